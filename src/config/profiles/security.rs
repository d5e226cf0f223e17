//! What NetworkManager 1.42's `nm_connection_normalize()` refuses in `[wifi-security]` and
//! `[802-1x]` (`verify()` of `nm-setting-wireless-security.c` and `nm-setting-8021x.c`): the
//! profile is rejected, never managed. Only presence and the fixed value sets are checked;
//! certificate files are not opened (NetworkManager only warns about a missing one).

use crate::config::keyfile;
use crate::config::keyfile_reader::{reject, Reader, Reject};
use crate::config::nm_types::NmType;

/// Values of `wifi-security.key-mgmt`.
const KEY_MGMT: &[&str] = &[
    "none",
    "ieee8021x",
    "wpa-psk",
    "wpa-eap",
    "wpa-eap-suite-b-192",
    "sae",
    "owe",
];
/// EAP methods `802-1x.eap` may list.
const EAP_METHODS: &[&str] = &[
    "leap", "md5", "tls", "peap", "ttls", "sim", "fast", "pwd", "external",
];
const PHASE2_AUTH: &[&str] = &[
    "pap", "chap", "mschap", "mschapv2", "gtc", "otp", "md5", "tls",
];
const PHASE2_AUTHEAP: &[&str] = &["md5", "mschapv2", "otp", "gtc", "tls"];

/// `[wifi-security]` and `[802-1x]` as NetworkManager verifies them.
pub(super) fn check(r: &mut Reader<'_>, t: &NmType) -> Result<(), Reject> {
    wifi_security(r)?;
    if r.kf.group_line("802-1x").is_some() {
        eap(r, t)?;
    }
    Ok(())
}

fn refuse(line: Option<usize>, what: &str) -> Result<(), Reject> {
    Err(reject(
        line,
        format!("{what} (NetworkManager refuses the profile)"),
    ))
}

/// `[wifi-security]`: `key-mgmt` known (and `none`/`sae` in a mesh); `auth-alg=leap` only with
/// `key-mgmt=ieee8021x` and a `leap-username`, otherwise the EAP kinds need `[802-1x]`;
/// `shared` only with WEP (`none`); `proto`, `pairwise`, `group` from their value lists; `pmf`
/// 0..=3, optional/required only with WPA kinds, and `owe`/`sae`/suite-B only default/required.
fn wifi_security(r: &mut Reader<'_>) -> Result<(), Reject> {
    let Some(section) = r.kf.group_line("wifi-security") else {
        return Ok(());
    };
    let Some((km, km_line)) = r.string("wifi-security", "key-mgmt") else {
        return refuse(Some(section), "wifi-security.key-mgmt is missing");
    };
    if !KEY_MGMT.contains(&km.as_str()) {
        return refuse(
            Some(km_line),
            &format!(
                "wifi-security.key-mgmt {km:?} is not one of {}",
                KEY_MGMT.join(", ")
            ),
        );
    }
    let mesh = r.string("wifi", "mode").is_some_and(|(m, _)| m == "mesh");
    if mesh && !matches!(km.as_str(), "none" | "sae") {
        return refuse(
            Some(km_line),
            &format!("key-mgmt={km} in a mesh (only none or sae)"),
        );
    }
    auth_alg(r, &km, km_line)?;
    for (key, allowed) in [
        ("proto", &["wpa", "rsn"][..]),
        ("pairwise", &["tkip", "ccmp"][..]),
        ("group", &["wep40", "wep104", "tkip", "ccmp"][..]),
    ] {
        let Some(e) = r.kf.get("wifi-security", key) else {
            continue;
        };
        if let Some(bad) = e
            .list()
            .into_iter()
            .find(|v| !allowed.contains(&v.as_str()))
        {
            return refuse(
                Some(e.line),
                &format!(
                    "wifi-security.{key} {bad:?} is not one of {}",
                    allowed.join(", ")
                ),
            );
        }
    }
    pmf(r, &km)
}

/// `auth-alg`: `leap` only with `key-mgmt=ieee8021x` and a `leap-username` (then no
/// `[802-1x]` is needed), otherwise the EAP kinds need `[802-1x]`; `shared` only with WEP.
fn auth_alg(r: &mut Reader<'_>, km: &str, km_line: usize) -> Result<(), Reject> {
    let auth = r.string("wifi-security", "auth-alg");
    let leap_user = r.string("wifi-security", "leap-username");
    match auth.as_ref().map(|(a, l)| (a.as_str(), *l)) {
        Some(("leap", line)) if km != "ieee8021x" => {
            refuse(Some(line), "auth-alg=leap needs key-mgmt=ieee8021x")?
        }
        Some(("leap", line)) if leap_user.is_none() => refuse(
            Some(line),
            "auth-alg=leap needs wifi-security.leap-username",
        )?,
        Some(("leap", _)) => {}
        _ if matches!(km, "wpa-eap" | "ieee8021x" | "wpa-eap-suite-b-192")
            && r.kf.group_line("802-1x").is_none() =>
        {
            refuse(
                Some(km_line),
                &format!("key-mgmt={km} needs an [802-1x] section"),
            )?
        }
        _ => {}
    }
    if let Some((_, line)) = leap_user.filter(|(u, _)| u.is_empty()) {
        refuse(Some(line), "wifi-security.leap-username is empty")?;
    }
    match auth {
        Some((a, line)) if !["open", "shared", "leap"].contains(&a.as_str()) => refuse(
            Some(line),
            &format!("wifi-security.auth-alg {a:?} is not open, shared or leap"),
        ),
        Some((a, line)) if a == "shared" && km != "none" => {
            refuse(Some(line), "auth-alg=shared needs key-mgmt=none (WEP)")
        }
        _ => Ok(()),
    }
}

/// `wifi-security.pmf` (0 default, 1 disable, 2 optional, 3 required).
fn pmf(r: &mut Reader<'_>, km: &str) -> Result<(), Reject> {
    let Some((text, line)) = r.string("wifi-security", "pmf") else {
        return Ok(());
    };
    let Some(pmf) = keyfile::nm_int(&text).filter(|v| (0..=i64::from(i32::MAX)).contains(v)) else {
        return Ok(());
    };
    let wpa = ["wpa-eap", "wpa-eap-suite-b-192", "wpa-psk", "sae", "owe"];
    if pmf > 3 {
        refuse(
            Some(line),
            &format!("wifi-security.pmf {pmf} is not 0 to 3"),
        )
    } else if (pmf == 2 || pmf == 3) && !wpa.contains(&km) {
        refuse(
            Some(line),
            &format!("wifi-security.pmf {pmf} needs a WPA key-mgmt, not {km}"),
        )
    } else if matches!(km, "owe" | "sae" | "wpa-eap-suite-b-192") && !(pmf == 0 || pmf == 3) {
        refuse(
            Some(line),
            &format!("key-mgmt={km} allows only pmf 0 (default) or 3 (required)"),
        )
    } else {
        Ok(())
    }
}

/// A key of `[802-1x]`: `Some((value, line))` when present (the value may be empty).
fn key(r: &mut Reader<'_>, name: &str) -> Option<(String, usize)> {
    r.string("802-1x", name)
}

/// `802-1x.KEY` must be present and not empty.
fn required(r: &mut Reader<'_>, name: &str, section: Option<usize>) -> Result<(), Reject> {
    match key(r, name) {
        None => refuse(section, &format!("802-1x.{name} is missing")),
        Some((v, line)) if v.is_empty() => refuse(Some(line), &format!("802-1x.{name} is empty")),
        Some(_) => Ok(()),
    }
}

/// `802-1x.KEY`, when present, must be one of `allowed`.
fn one_of(r: &mut Reader<'_>, name: &str, allowed: &[&str]) -> Result<(), Reject> {
    match key(r, name) {
        Some((v, line)) if !allowed.contains(&v.as_str()) => refuse(
            Some(line),
            &format!("802-1x.{name} {v:?} is not one of {}", allowed.join(", ")),
        ),
        _ => Ok(()),
    }
}

/// `[802-1x]`: `eap` listing known methods, what each method needs (an identity; for `tls` a
/// client certificate and private key; for `peap`/`ttls` exactly one of `phase2-auth` and
/// `phase2-autheap`), the phase-1/phase-2 value sets, and `optional` only on Ethernet.
fn eap(r: &mut Reader<'_>, t: &NmType) -> Result<(), Reject> {
    let section = r.kf.group_line("802-1x");
    if t.short != "ethernet" && r.bool("802-1x", "optional", false) {
        let line = r.kf.get("802-1x", "optional").map(|e| e.line);
        return refuse(line, "802-1x.optional=true is only for Ethernet profiles");
    }
    let methods = r.kf.get("802-1x", "eap").map(|e| (e.list(), e.line));
    let (methods, line) = match methods {
        Some((m, line)) if !m.is_empty() => (m, line),
        _ => return refuse(section, "802-1x.eap is missing"),
    };
    if let Some(bad) = methods.iter().find(|m| !EAP_METHODS.contains(&m.as_str())) {
        return refuse(
            Some(line),
            &format!(
                "802-1x.eap {bad:?} is not one of {}",
                EAP_METHODS.join(", ")
            ),
        );
    }
    for method in &methods {
        match method.as_str() {
            "leap" | "pwd" | "md5" | "fast" => required(r, "identity", section)?,
            "tls" => {
                required(r, "client-cert", section)?;
                required(r, "private-key", section)?;
            }
            "peap" | "ttls" => {
                required(r, "identity", section)?;
                let auth = key(r, "phase2-auth").is_some();
                if auth == key(r, "phase2-autheap").is_some() {
                    return refuse(
                        section,
                        &format!("eap={method} needs exactly one of 802-1x.phase2-auth and 802-1x.phase2-autheap"),
                    );
                }
            }
            _ => {}
        }
    }
    one_of(r, "phase1-peapver", &["0", "1"])?;
    one_of(r, "phase1-peaplabel", &["0", "1"])?;
    one_of(r, "phase1-fast-provisioning", &["0", "1", "2", "3"])?;
    one_of(r, "phase2-auth", PHASE2_AUTH)?;
    one_of(r, "phase2-autheap", PHASE2_AUTHEAP)
}
