//! When to renew a certificate and how long to wait after a failure: pure functions of
//! times (unix seconds) and a random number, so the certificate thread's choices are tested
//! without clocks.

/// Renew this long before expiry, for lifetimes of 90 days and more (Let's Encrypt's).
pub const RENEW_BEFORE: i64 = 30 * 86_400;
/// The first retry after a failure waits this long; each further failure doubles it.
pub const BACKOFF_BASE: i64 = 60;
/// The longest wait between attempts: a certificate that keeps failing is still tried
/// four times a day, and a CA that was down for a day is not waited on for days more.
pub const BACKOFF_MAX: i64 = 6 * 3600;
/// The most a renewal is moved earlier, so certificates issued together spread their
/// renewals over half a day instead of hitting the CA at once.
pub const JITTER_MAX: i64 = 12 * 3600;

/// When a certificate valid from `not_before` to `not_after` should be renewed: 30 days
/// before expiry, or at two-thirds of its lifetime when that is earlier (short-lived
/// certificates, like a 6-day one, would otherwise be renewed before they were issued).
pub fn renew_at(not_before: i64, not_after: i64) -> i64 {
    let lifetime = (not_after - not_before).max(0);
    not_after - RENEW_BEFORE.min(lifetime / 3)
}

/// `at` moved earlier by a jitter drawn from `random`: at most [`JITTER_MAX`] and at most a
/// tenth of the time left before it, so it never lands in the past of `now`.
pub fn jittered(at: i64, now: i64, random: u64) -> i64 {
    let room = ((at - now) / 10).clamp(0, JITTER_MAX);
    at - (random % (room as u64 + 1)) as i64
}

/// The wait after `failures` consecutive failed attempts (1 for the first): exponential
/// from [`BACKOFF_BASE`], capped at [`BACKOFF_MAX`], plus up to 10 % drawn from `random` so
/// names that failed together do not retry together.
pub fn backoff(failures: u32, random: u64) -> i64 {
    let doublings = failures.saturating_sub(1).min(20);
    let wait = (BACKOFF_BASE << doublings).min(BACKOFF_MAX);
    wait + (random % (wait as u64 / 10 + 1)) as i64
}

/// When to try next after the `failures`-th consecutive failure at `now`.
pub fn next_after_failure(now: i64, failures: u32, random: u64) -> i64 {
    now + backoff(failures, random)
}

/// A random number for the jitters, from the OS generator ring already uses.
pub fn random_u64() -> u64 {
    use ring::rand::{SecureRandom, SystemRandom};
    let mut bytes = [0u8; 8];
    // A failed read leaves zeros: no jitter, which is still a correct schedule.
    let _ = SystemRandom::new().fill(&mut bytes);
    u64::from_le_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;

    #[test]
    fn ninety_day_certificates_renew_thirty_days_before_expiry() {
        assert_eq!(renew_at(0, 90 * DAY), 60 * DAY);
        assert_eq!(renew_at(0, 365 * DAY), 335 * DAY);
    }

    #[test]
    fn short_lived_certificates_renew_at_two_thirds_of_their_lifetime() {
        assert_eq!(renew_at(0, 6 * DAY), 4 * DAY);
        assert_eq!(renew_at(1000, 1000 + 30 * DAY), 1000 + 20 * DAY);
        // Nonsense validity (ends before it starts) renews at once rather than never.
        assert_eq!(renew_at(10 * DAY, DAY), DAY);
    }

    #[test]
    fn jitter_moves_earlier_within_bounds() {
        let (now, at) = (0, 60 * DAY);
        for random in [0, 1, 12_345, u64::MAX / 3, u64::MAX] {
            let j = jittered(at, now, random);
            assert!(j <= at && j >= at - JITTER_MAX, "{j}");
        }
        assert_eq!(jittered(at, now, 0), at);
        assert_eq!(jittered(at, now, JITTER_MAX as u64), at - JITTER_MAX);
        // Close to now, at most a tenth of the time left: never in the past.
        assert!(jittered(100, 0, u64::MAX) >= 90);
        assert_eq!(jittered(0, 50, u64::MAX), 0, "already due: unchanged");
    }

    #[test]
    fn backoff_doubles_up_to_its_cap_with_a_small_jitter() {
        assert_eq!(backoff(1, 0), 60);
        assert_eq!(backoff(2, 0), 120);
        assert_eq!(backoff(3, 0), 240);
        assert_eq!(backoff(9, 0), 60 << 8);
        assert_eq!(backoff(10, 0), BACKOFF_MAX);
        assert_eq!(backoff(u32::MAX, 0), BACKOFF_MAX);
        assert_eq!(
            backoff(0, 0),
            60,
            "a zero count is treated as the first failure"
        );
        for failures in 1..40 {
            let plain = backoff(failures, 0);
            let most = backoff(failures, plain as u64 / 10);
            assert_eq!(most, plain + plain / 10);
            assert!(backoff(failures, u64::MAX) <= plain + plain / 10);
            assert!(backoff(failures + 1, 0) >= plain);
        }
        assert_eq!(next_after_failure(1000, 2, 0), 1120);
    }
}
