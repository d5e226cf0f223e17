//! The ladder's D-Bus rungs on the system bus (`DBUS_SYSTEM_BUS_ADDRESS` honoured, as every
//! D-Bus client does): NetworkManager re-activates the interface's active connection
//! (`reconnect`), ModemManager resets the modem whose ports include the interface
//! (`modem-reset`), logind reboots (`Reboot(false)`: no interactive authorization). A service
//! that does not own its name on the bus is a skip with the reason, not an error.

use netfailover_actors::ports::ActionOutcome;

use super::dbus_wire::{Arg, BusError, Connection, Value, SYSTEM_BUS_DEFAULT};

pub const NM: &str = "org.freedesktop.NetworkManager";
pub const NM_PATH: &str = "/org/freedesktop/NetworkManager";
pub const MM: &str = "org.freedesktop.ModemManager1";
pub const MM_PATH: &str = "/org/freedesktop/ModemManager1";
pub const LOGIND: &str = "org.freedesktop.login1";
pub const LOGIND_PATH: &str = "/org/freedesktop/login1";

/// Which bus the rungs talk to: the system bus (`DBUS_SYSTEM_BUS_ADDRESS` or its default
/// socket), or a given address (tests run their own bus).
#[derive(Clone, Debug, Default)]
pub struct Bus {
    address: Option<String>,
}

impl Bus {
    /// The system bus.
    pub fn system() -> Self {
        Self::default()
    }

    /// The bus at `address` (`unix:path=…`).
    pub fn at(address: impl Into<String>) -> Self {
        Self {
            address: Some(address.into()),
        }
    }

    async fn connect(&self) -> Result<Connection, BusError> {
        let address = match &self.address {
            Some(a) => a.clone(),
            None => std::env::var("DBUS_SYSTEM_BUS_ADDRESS")
                .ok()
                .filter(|a| !a.is_empty())
                .unwrap_or_else(|| SYSTEM_BUS_DEFAULT.to_string()),
        };
        Connection::open(&address).await
    }

    /// `reconnect` (see [`nm_reconnect`]).
    pub async fn nm_reconnect(&self, iface: &str) -> ActionOutcome {
        nm_reconnect(self, iface).await
    }

    /// `modem-reset` (see [`mm_reset`]).
    pub async fn mm_reset(&self, iface: &str) -> ActionOutcome {
        mm_reset(self, iface).await
    }

    /// `reboot` through logind (see [`logind_reboot`]).
    pub async fn logind_reboot(&self) -> ActionOutcome {
        logind_reboot(self).await
    }
}

/// Connects to the bus and checks that `name` has an owner; `Err` is the outcome to return
/// (skipped: no bus or no service).
async fn service(bus: &Bus, name: &str) -> Result<Connection, ActionOutcome> {
    let mut conn = bus
        .connect()
        .await
        .map_err(|e| ActionOutcome::Skipped(format!("no system D-Bus: {e}")))?;
    let running = conn
        .call(
            "org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus",
            "NameHasOwner",
            &[Arg::Str(name)],
        )
        .await
        .and_then(|reply| first(reply, Value::as_bool))
        .map_err(|e| ActionOutcome::Failed(format!("asking the bus about {name}: {e}")))?;
    if running {
        Ok(conn)
    } else {
        Err(ActionOutcome::Skipped(format!("{name} is not running")))
    }
}

/// The reply's first value, read by `get` (an object path or string: [`Value::as_str`]).
fn first<T>(reply: Vec<Value>, get: impl Fn(&Value) -> Option<T>) -> Result<T, BusError> {
    reply
        .first()
        .and_then(get)
        .ok_or(BusError::Protocol("unexpected reply type"))
}

fn path(v: &Value) -> Option<String> {
    v.as_str().map(str::to_string)
}

/// One property, through `org.freedesktop.DBus.Properties.Get` (an object path here).
async fn property_path(
    conn: &mut Connection,
    dest: &str,
    object: &str,
    iface: &str,
    name: &str,
) -> Result<String, BusError> {
    let reply = conn
        .call(
            dest,
            object,
            "org.freedesktop.DBus.Properties",
            "Get",
            &[Arg::Str(iface), Arg::Str(name)],
        )
        .await?;
    first(reply, path)
}

/// `reconnect`: NetworkManager re-activates `iface`'s active connection (its
/// `ActivateConnection` on an active connection deactivates and activates it again: a fresh
/// DHCP lease, a new Wi-Fi association, a new bearer).
pub async fn nm_reconnect(bus: &Bus, iface: &str) -> ActionOutcome {
    let mut conn = match service(bus, NM).await {
        Ok(c) => c,
        Err(outcome) => return outcome,
    };
    match nm_reactivate(&mut conn, iface).await {
        Ok(outcome) => outcome,
        Err(e) => ActionOutcome::Failed(format!("NetworkManager: {e}")),
    }
}

async fn nm_reactivate(conn: &mut Connection, iface: &str) -> Result<ActionOutcome, BusError> {
    let device = match conn
        .call(NM, NM_PATH, NM, "GetDeviceByIpIface", &[Arg::Str(iface)])
        .await
    {
        Ok(reply) => first(reply, path)?,
        Err(BusError::Method { name, .. }) if name.ends_with("UnknownDevice") => {
            return Ok(ActionOutcome::Skipped(format!(
                "NetworkManager does not know {iface}"
            )))
        }
        Err(e) => return Err(e),
    };
    let dev_iface = "org.freedesktop.NetworkManager.Device";
    let active = property_path(conn, NM, &device, dev_iface, "ActiveConnection").await?;
    if active == "/" {
        return Ok(ActionOutcome::Skipped(format!(
            "no active NetworkManager connection on {iface}"
        )));
    }
    let active_iface = "org.freedesktop.NetworkManager.Connection.Active";
    let profile = property_path(conn, NM, &active, active_iface, "Connection").await?;
    conn.call(
        NM,
        NM_PATH,
        NM,
        "ActivateConnection",
        &[Arg::Path(&profile), Arg::Path(&device), Arg::Path("/")],
    )
    .await?;
    Ok(ActionOutcome::Done)
}

/// `modem-reset`: ModemManager resets the modem whose ports include `iface`.
pub async fn mm_reset(bus: &Bus, iface: &str) -> ActionOutcome {
    let mut conn = match service(bus, MM).await {
        Ok(c) => c,
        Err(outcome) => return outcome,
    };
    let modem = match mm_modem_of(&mut conn, iface).await {
        Ok(Some(m)) => m,
        Ok(None) => {
            return ActionOutcome::Skipped(format!("no ModemManager modem has the port {iface}"))
        }
        Err(e) => return ActionOutcome::Failed(format!("ModemManager: listing modems: {e}")),
    };
    let reset = conn
        .call(
            MM,
            &modem,
            "org.freedesktop.ModemManager1.Modem",
            "Reset",
            &[],
        )
        .await;
    match reset {
        Ok(_) => ActionOutcome::Done,
        Err(e) => ActionOutcome::Failed(format!("ModemManager: resetting {modem}: {e}")),
    }
}

/// The modem object whose `Ports` (`a(su)`: name, type) include `iface`, from
/// `GetManagedObjects` (`a{oa{sa{sv}}}`).
async fn mm_modem_of(conn: &mut Connection, iface: &str) -> Result<Option<String>, BusError> {
    let reply = conn
        .call(
            MM,
            MM_PATH,
            "org.freedesktop.DBus.ObjectManager",
            "GetManagedObjects",
            &[],
        )
        .await?;
    let Some(objects) = reply.first() else {
        return Err(BusError::Protocol("unexpected reply type"));
    };
    for (object, ifaces) in objects.dict() {
        let Some(ports) = ifaces
            .get("org.freedesktop.ModemManager1.Modem")
            .and_then(|modem| modem.get("Ports"))
        else {
            continue;
        };
        let Value::Array(ports) = ports.unwrap_variant() else {
            continue;
        };
        let has = ports.iter().any(|port| match port {
            Value::Struct(fields) => fields.first().and_then(Value::as_str) == Some(iface),
            _ => false,
        });
        if has {
            return Ok(object.as_str().map(str::to_string));
        }
    }
    Ok(None)
}

/// `reboot` through systemd-logind: `Reboot(false)`.
pub async fn logind_reboot(bus: &Bus) -> ActionOutcome {
    let mut conn = match service(bus, LOGIND).await {
        Ok(c) => c,
        Err(outcome) => return outcome,
    };
    let r = conn
        .call(
            LOGIND,
            LOGIND_PATH,
            "org.freedesktop.login1.Manager",
            "Reboot",
            &[Arg::Bool(false)],
        )
        .await;
    match r {
        Ok(_) => ActionOutcome::Done,
        Err(e) => ActionOutcome::Failed(format!("logind: {e}")),
    }
}
