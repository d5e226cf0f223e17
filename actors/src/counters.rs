//! Kernel counters read twice: how much they grew in between, the one rule for a counter that
//! went back (used by passive health's windows and by the monthly accounting).

/// Counters kept in 32 bits by some drivers wrap at this value.
const WRAP32: u64 = 1 << 32;

/// How much a counter grew from `before` to `now`; `None` when it went back in a way a 32-bit
/// wrap does not explain, i.e. it restarted (the interface was re-created, the driver reloaded,
/// the device rebooted).
///
/// A counter that went back wrapped only when the earlier reading was in the top quarter of the
/// 32-bit range and the new one is in its bottom quarter: the wrapped growth is then under
/// 2 GiB, where taking any backward step as a wrap would turn a restart into gigabytes.
pub fn counter_step(before: u64, now: u64) -> Option<u64> {
    if now >= before {
        return Some(now - before);
    }
    let wrapped = (WRAP32 / 4 * 3..WRAP32).contains(&before) && now < WRAP32 / 4;
    wrapped.then(|| WRAP32 - before + now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growth_wrap_and_restart() {
        assert_eq!(counter_step(5, 9), Some(4));
        assert_eq!(counter_step(7, 7), Some(0));
        assert_eq!(counter_step(WRAP32 - 2, 3), Some(5), "a 32-bit wrap");
        assert_eq!(
            counter_step(10_000_000, 1_200),
            None,
            "a restart, not a wrap"
        );
        assert_eq!(
            counter_step(1 << 40, 3),
            None,
            "a 64-bit counter never wraps"
        );
    }
}
