//! `[connection] metered`: NetworkManager stores its `NMMetered` enum as a number (0 unknown,
//! 1 yes, 2 no; read as every keyfile integer, `keyfile::nm_int`); the names `unknown`, `yes`
//! and `no` (what nmcli takes) are accepted too. Unknown, absent, or a value that is neither
//! (a warning) is guessed from the type as NetworkManager guesses: cellular metered, the rest
//! not (`docs/config.md`, "Metered uplinks").

use netfailover_actors::model::{Metered, UplinkType};

use crate::config::keyfile;
use crate::config::keyfile_reader::Reader;

/// What the file says: `Some(true)` yes, `Some(false)` no, `None` unknown; `Err` not a value.
fn value(text: &str) -> Result<Option<bool>, ()> {
    match text.trim() {
        "yes" => return Ok(Some(true)),
        "no" => return Ok(Some(false)),
        "unknown" => return Ok(None),
        _ => {}
    }
    match keyfile::nm_int(text) {
        Some(0) => Ok(None),
        Some(1) => Ok(Some(true)),
        Some(2) => Ok(Some(false)),
        _ => Err(()),
    }
}

/// The profile's metered flag, guessed from `t` when the file leaves it unknown.
pub(super) fn read(r: &mut Reader<'_>, t: UplinkType) -> Metered {
    let guess = Metered::guess(t);
    let Some((text, line)) = r.string("connection", "metered") else {
        return guess;
    };
    match value(&text) {
        Ok(Some(metered)) => Metered {
            metered,
            guessed: false,
        },
        Ok(None) => guess,
        Err(()) => {
            r.warn(
                line,
                format!("connection.metered {text:?} is not 0 (unknown), 1 (yes), 2 (no), unknown, yes or no; using unknown, guessed from the type: {guess}"),
            );
            guess
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_names() {
        assert_eq!(value("1"), Ok(Some(true)));
        assert_eq!(value("2"), Ok(Some(false)));
        assert_eq!(value("0"), Ok(None));
        assert_eq!(value("0x1"), Ok(Some(true)));
        assert_eq!(value("yes"), Ok(Some(true)));
        assert_eq!(value("no"), Ok(Some(false)));
        assert_eq!(value("unknown"), Ok(None));
        // GUESS_YES / GUESS_NO are device states, not profile values.
        assert_eq!(value("3"), Err(()));
        assert_eq!(value("4"), Err(()));
        assert_eq!(value("-1"), Err(()));
        assert_eq!(value("true"), Err(()));
        assert_eq!(value(""), Err(()));
    }

    #[test]
    fn guess_per_type() {
        for (t, metered) in [
            (UplinkType::Gsm, true),
            (UplinkType::Cdma, true),
            (UplinkType::Ethernet, false),
            (UplinkType::Wifi, false),
            (UplinkType::Other, false),
        ] {
            assert_eq!(
                Metered::guess(t),
                Metered {
                    metered,
                    guessed: true
                },
                "{t:?}"
            );
        }
        assert_eq!(Metered::guess(UplinkType::Gsm).to_string(), "yes (guessed)");
        let said = Metered {
            metered: false,
            guessed: false,
        };
        assert_eq!(said.to_string(), "no");
    }

    /// The profile's flag and the problems, read from a keyfile of type `t`.
    fn load(t: &str, metered: Option<&str>) -> (Metered, Vec<String>) {
        let key = metered.map_or(String::new(), |m| format!("metered={m}\n"));
        let text = format!("[connection]\nid=x\ntype={t}\ninterface-name=x0\n{key}");
        let mut problems = Vec::new();
        let path = std::path::Path::new("p");
        let p = super::super::parse_profile(&text, path, path, &mut problems);
        let problems = problems.iter().map(ToString::to_string).collect();
        (p.map(|p| p.profile.metered).unwrap_or_default(), problems)
    }

    #[test]
    fn keyfile_values_absent_and_bad() {
        let said = |metered| Metered {
            metered,
            guessed: false,
        };
        assert_eq!(load("ethernet", Some("1")), (said(true), vec![]));
        assert_eq!(load("gsm", Some("2")), (said(false), vec![]));
        assert_eq!(load("gsm", Some("no")), (said(false), vec![]));
        assert_eq!(load("ethernet", Some("yes")), (said(true), vec![]));
        let gsm = Metered::guess(UplinkType::Gsm);
        let eth = Metered::guess(UplinkType::Ethernet);
        assert_eq!(load("gsm", None), (gsm, vec![]));
        assert_eq!(
            load("cdma", Some("0")),
            (Metered::guess(UplinkType::Cdma), vec![])
        );
        assert_eq!(load("ethernet", Some("unknown")), (eth, vec![]));
        assert_eq!(
            load("gsm", Some("maybe")),
            (
                gsm,
                vec![
                    "p:5: warning: connection.metered \"maybe\" is not 0 (unknown), 1 (yes), 2 (no), unknown, yes or no; using unknown, guessed from the type: yes (guessed)".to_string()
                ]
            )
        );
    }
}
