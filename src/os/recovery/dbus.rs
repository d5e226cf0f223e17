//! The ladder's D-Bus rungs on the system bus (`DBUS_SYSTEM_BUS_ADDRESS` honoured, as every
//! D-Bus client does): NetworkManager re-activates the interface's active connection
//! (`reconnect`), ModemManager resets the modem whose ports include the interface
//! (`modem-reset`), logind reboots (`Reboot(false)`: no interactive authorization). A service
//! that does not own its name on the bus is a skip with the reason, not an error.

use std::collections::HashMap;

use netfailover_actors::ports::ActionOutcome;
use zbus::zvariant::{OwnedObjectPath, OwnedValue};
use zbus::Connection;

pub const NM: &str = "org.freedesktop.NetworkManager";
pub const NM_PATH: &str = "/org/freedesktop/NetworkManager";
pub const MM: &str = "org.freedesktop.ModemManager1";
pub const MM_PATH: &str = "/org/freedesktop/ModemManager1";
pub const LOGIND: &str = "org.freedesktop.login1";
pub const LOGIND_PATH: &str = "/org/freedesktop/login1";

type Objects = HashMap<OwnedObjectPath, HashMap<String, HashMap<String, OwnedValue>>>;

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

    async fn connect(&self) -> zbus::Result<Connection> {
        match &self.address {
            None => Connection::system().await,
            Some(a) => {
                zbus::connection::Builder::address(a.as_str())?
                    .build()
                    .await
            }
        }
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
    let conn = bus
        .connect()
        .await
        .map_err(|e| ActionOutcome::Skipped(format!("no system D-Bus: {e}")))?;
    let running: bool = call(
        &conn,
        "org.freedesktop.DBus",
        "/org/freedesktop/DBus",
        "org.freedesktop.DBus",
        "NameHasOwner",
        &(name,),
    )
    .await
    .map_err(|e| ActionOutcome::Failed(format!("asking the bus about {name}: {e}")))?;
    if running {
        Ok(conn)
    } else {
        Err(ActionOutcome::Skipped(format!("{name} is not running")))
    }
}

/// One method call, its reply decoded.
async fn call<B, R>(
    conn: &Connection,
    dest: &str,
    path: &str,
    iface: &str,
    method: &str,
    body: &B,
) -> zbus::Result<R>
where
    B: serde::Serialize + zbus::zvariant::DynamicType,
    R: for<'d> zbus::zvariant::DynamicDeserialize<'d>,
{
    let reply = conn
        .call_method(Some(dest), path, Some(iface), method, body)
        .await?;
    reply.body().deserialize::<R>()
}

/// One property, through `org.freedesktop.DBus.Properties.Get`.
async fn property<T>(
    conn: &Connection,
    dest: &str,
    path: &str,
    iface: &str,
    name: &str,
) -> zbus::Result<T>
where
    T: TryFrom<OwnedValue>,
    T::Error: Into<zbus::Error>,
{
    let v: OwnedValue = call(
        conn,
        dest,
        path,
        "org.freedesktop.DBus.Properties",
        "Get",
        &(iface, name),
    )
    .await?;
    T::try_from(v).map_err(Into::into)
}

/// `reconnect`: NetworkManager re-activates `iface`'s active connection (its
/// `ActivateConnection` on an active connection deactivates and activates it again: a fresh
/// DHCP lease, a new Wi-Fi association, a new bearer).
pub async fn nm_reconnect(bus: &Bus, iface: &str) -> ActionOutcome {
    let conn = match service(bus, NM).await {
        Ok(c) => c,
        Err(outcome) => return outcome,
    };
    match nm_reactivate(&conn, iface).await {
        Ok(outcome) => outcome,
        Err(e) => ActionOutcome::Failed(format!("NetworkManager: {e}")),
    }
}

async fn nm_reactivate(conn: &Connection, iface: &str) -> zbus::Result<ActionOutcome> {
    let device: OwnedObjectPath = match call(conn, NM, NM_PATH, NM, "GetDeviceByIpIface", &(iface,))
        .await
    {
        Ok(d) => d,
        Err(zbus::Error::MethodError(name, _, _)) if name.as_str().ends_with("UnknownDevice") => {
            return Ok(ActionOutcome::Skipped(format!(
                "NetworkManager does not know {iface}"
            )))
        }
        Err(e) => return Err(e),
    };
    let dev_iface = "org.freedesktop.NetworkManager.Device";
    let active: OwnedObjectPath =
        property(conn, NM, device.as_str(), dev_iface, "ActiveConnection").await?;
    if active.as_str() == "/" {
        return Ok(ActionOutcome::Skipped(format!(
            "no active NetworkManager connection on {iface}"
        )));
    }
    let active_iface = "org.freedesktop.NetworkManager.Connection.Active";
    let profile: OwnedObjectPath =
        property(conn, NM, active.as_str(), active_iface, "Connection").await?;
    let root = OwnedObjectPath::try_from("/")?;
    let _new_active: OwnedObjectPath = call(
        conn,
        NM,
        NM_PATH,
        NM,
        "ActivateConnection",
        &(&profile, &device, &root),
    )
    .await?;
    Ok(ActionOutcome::Done)
}

/// `modem-reset`: ModemManager resets the modem whose ports include `iface`.
pub async fn mm_reset(bus: &Bus, iface: &str) -> ActionOutcome {
    let conn = match service(bus, MM).await {
        Ok(c) => c,
        Err(outcome) => return outcome,
    };
    let modem = match mm_modem_of(&conn, iface).await {
        Ok(Some(m)) => m,
        Ok(None) => {
            return ActionOutcome::Skipped(format!("no ModemManager modem has the port {iface}"))
        }
        Err(e) => return ActionOutcome::Failed(format!("ModemManager: listing modems: {e}")),
    };
    let reset: zbus::Result<()> = call(
        &conn,
        MM,
        modem.as_str(),
        "org.freedesktop.ModemManager1.Modem",
        "Reset",
        &(),
    )
    .await;
    match reset {
        Ok(()) => ActionOutcome::Done,
        Err(e) => ActionOutcome::Failed(format!("ModemManager: resetting {}: {e}", modem.as_str())),
    }
}

/// The modem object whose `Ports` (`a(su)`: name, type) include `iface`.
async fn mm_modem_of(conn: &Connection, iface: &str) -> zbus::Result<Option<OwnedObjectPath>> {
    let objects: Objects = call(
        conn,
        MM,
        MM_PATH,
        "org.freedesktop.DBus.ObjectManager",
        "GetManagedObjects",
        &(),
    )
    .await?;
    for (path, ifaces) in objects {
        let Some(modem) = ifaces.get("org.freedesktop.ModemManager1.Modem") else {
            continue;
        };
        let Some(ports) = modem.get("Ports") else {
            continue;
        };
        let ports: Vec<(String, u32)> = match ports.try_clone().map(Vec::<(String, u32)>::try_from)
        {
            Ok(Ok(p)) => p,
            _ => continue,
        };
        if ports.iter().any(|(name, _)| name == iface) {
            return Ok(Some(path));
        }
    }
    Ok(None)
}

/// `reboot` through systemd-logind: `Reboot(false)`.
pub async fn logind_reboot(bus: &Bus) -> ActionOutcome {
    let conn = match service(bus, LOGIND).await {
        Ok(c) => c,
        Err(outcome) => return outcome,
    };
    let r: zbus::Result<()> = call(
        &conn,
        LOGIND,
        LOGIND_PATH,
        "org.freedesktop.login1.Manager",
        "Reboot",
        &(false,),
    )
    .await;
    match r {
        Ok(()) => ActionOutcome::Done,
        Err(e) => ActionOutcome::Failed(format!("logind: {e}")),
    }
}
