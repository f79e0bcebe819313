//! Per-user sliding windows of message scores, in event time, for one input partition.
//!
//! Each user keeps the messages of the last `window_ms` (time, anomaly score, voted) and an
//! exponentially weighted baseline of their scores (time constant `baseline_tau_ms`, so the
//! baseline remembers weeks, the window days). Stream time is the newest event time seen in
//! the partition. An event older than stream time − `allowed_lateness_ms` is *late*: it is
//! counted (`late_dropped`) and not folded in (the message itself is still scored); events
//! within the lateness are inserted at their place. Messages older than stream time − window
//! leave the window; a user with nothing left in the window and idle for window + lateness
//! is removed, so memory follows the active users.
//!
//! The message-anomaly aggregate of a user (`message_risk`, 0–1) is
//! `0.6 · vote_surprise + 0.4 · top3_mean`: `vote_surprise` is `P(X < k)` for the user's `k`
//! voted anomalies among `n` messages in the window under `X ~ Binomial(n, p)` — how unlikely
//! so many anomalies are for this user with that much mail — where `p` is the larger of the
//! voted share of held-out normal mail and the user's own long-run vote rate (an EWMA with
//! the baseline's time constant, starting at the normal share): a user whose mail is always
//! unusual is judged against their own habits, one who changes is not. `top3_mean` is the
//! mean of the user's three highest scores. The trend is the mean score of the last
//! `trend_recent_ms` minus the score baseline.
//!
//! Measured on the generated holdout (seed 42): judging users against their own vote rate
//! raised the user ROC-AUC from 0.9935 to 0.9980 (the missed insider moved from rank 18 to
//! 11); a log-scaled severity of the top scores instead of `top3_mean` did not help.
//!
//! [`PartitionWindows`] is the pipeline's keyed partition state
//! ([`crate::runtime::PartitionState`]): one changelog entry per user, plus the partition's
//! stream time under a reserved key. Each user records the input offset after the last
//! message folded into it, so a re-delivered message is scored but not folded twice.

use std::any::Any;
use std::collections::{HashMap, HashSet, VecDeque};

use serde::{Deserialize, Serialize};
use statrs::distribution::{Binomial, DiscreteCDF};

use crate::runtime::{PartitionState, StateChange};

/// The changelog key of the partition-wide facts (user keys are addresses: never this).
pub const META_KEY: &str = "@partition";

/// Window settings (from `[operators.email]`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WindowSettings {
    /// Window length.
    pub window_ms: i64,
    /// Lateness within which out-of-order events are still folded in.
    pub allowed_lateness_ms: i64,
    /// The recent part of the window the trend looks at.
    pub trend_recent_ms: i64,
    /// Time constant of the baseline.
    pub baseline_tau_ms: i64,
    /// Voted share of normal mail (`p₀`, from the model).
    pub normal_vote_rate: f64,
}

impl Default for WindowSettings {
    fn default() -> Self {
        Self {
            window_ms: 7 * 86_400_000,
            allowed_lateness_ms: 3_600_000,
            trend_recent_ms: 86_400_000,
            baseline_tau_ms: 30 * 86_400_000,
            normal_vote_rate: 0.02,
        }
    }
}

/// One message in a user's window.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Sighting {
    /// Event time.
    pub time_ms: i64,
    /// Anomaly score.
    pub score: f32,
    /// Voted anomaly.
    pub voted: bool,
}

/// One user's state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UserWindow {
    /// Messages in the window, oldest first.
    pub sightings: VecDeque<Sighting>,
    /// EWMA of the user's scores (`f32`, as the scores: 8 bytes instead of 16 per user).
    pub baseline: Option<f32>,
    /// EWMA of the user's voted-anomaly indicator, starting at the normal vote rate: how
    /// often this user's mail is voted anomalous as a rule.
    #[serde(default)]
    pub baseline_vote_rate: Option<f32>,
    /// Event time the baseline was last moved to.
    pub baseline_time_ms: i64,
    /// Newest event time of the user.
    pub last_seen_ms: i64,
    /// User risk in the last per-user record, and when (wall clock) it was emitted.
    pub last_emitted: Option<(f64, i64)>,
    /// The input offset after the last message folded in (re-deliveries below it are not
    /// folded again).
    #[serde(default)]
    pub next_offset: i64,
}

/// Statistics of one user's window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WindowStats {
    /// Messages in the window.
    pub messages: usize,
    /// Mean score.
    pub mean_score: f64,
    /// Highest score.
    pub max_score: f64,
    /// Mean of the three highest.
    pub top3_mean: f64,
    /// Voted anomalies.
    pub voted_anomalies: usize,
    /// `P(X < k)` under the normal vote rate.
    pub vote_surprise: f64,
    /// Mean score of the recent part.
    pub recent_mean: f64,
    /// The baseline.
    pub baseline: f64,
    /// `recent_mean − baseline`.
    pub trend: f64,
    /// The message-anomaly aggregate, 0–1.
    pub message_risk: f64,
}

/// What happened to a folded event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fold {
    /// In the window.
    Folded,
    /// Behind the allowed lateness: counted and dropped.
    Late,
    /// Already reflected in the user's restored window (offset below its `next_offset`).
    Replayed,
}

/// The windows of one partition.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PartitionWindows {
    /// Users by key. Keys and windows are boxed: a table slot is 24 bytes, so the table's
    /// spare capacity (up to half of it after a resize) costs little per user.
    pub users: HashMap<Box<str>, Box<UserWindow>>,
    /// Newest event time folded in.
    pub stream_time_ms: i64,
    /// The next offset not yet folded in (the offset this state reflects).
    pub next_offset: i64,
    /// Late events dropped so far.
    pub late_dropped: u64,
    /// Users changed or removed since the last checkpoint.
    #[serde(skip)]
    changed: HashSet<Box<str>>,
    /// Partition-wide facts changed since the last checkpoint.
    #[serde(skip)]
    meta_changed: bool,
}

/// The partition-wide facts as written to the changelog.
#[derive(Debug, Serialize, Deserialize)]
struct MetaEntry {
    stream_time_ms: i64,
    next_offset: i64,
    late_dropped: u64,
}

impl PartitionWindows {
    /// Folds the message at `offset` of `user` into the window.
    pub fn fold(
        &mut self,
        offset: i64,
        user: &str,
        sighting: Sighting,
        settings: &WindowSettings,
    ) -> Fold {
        if self
            .users
            .get(user)
            .is_some_and(|window| offset < window.next_offset)
        {
            return Fold::Replayed;
        }
        self.next_offset = self.next_offset.max(offset + 1);
        self.meta_changed = true;
        if !self.users.is_empty()
            && sighting.time_ms < self.stream_time_ms - settings.allowed_lateness_ms
        {
            self.late_dropped += 1;
            return Fold::Late;
        }
        self.stream_time_ms = self.stream_time_ms.max(sighting.time_ms);
        self.changed.insert(user.into());
        let window = self.users.entry(user.into()).or_default();
        window.next_offset = offset + 1;
        let place = window
            .sightings
            .partition_point(|s| s.time_ms <= sighting.time_ms);
        if window.sightings.len() == window.sightings.capacity() {
            // Grow by half instead of doubling from four: most users hold a few messages.
            let more = (window.sightings.len() / 2).max(1);
            window.sightings.reserve_exact(more);
        }
        window.sightings.insert(place, sighting);
        window.last_seen_ms = window.last_seen_ms.max(sighting.time_ms);
        let score = f64::from(sighting.score);
        let voted = f64::from(u8::from(sighting.voted));
        match window.baseline {
            None => {
                window.baseline = Some(score as f32);
                window.baseline_vote_rate = Some(settings.normal_vote_rate as f32);
                window.baseline_time_ms = sighting.time_ms;
            }
            Some(baseline) if sighting.time_ms > window.baseline_time_ms => {
                let baseline = f64::from(baseline);
                let elapsed = (sighting.time_ms - window.baseline_time_ms) as f64;
                let alpha = 1.0 - (-elapsed / settings.baseline_tau_ms.max(1) as f64).exp();
                window.baseline = Some((baseline + alpha * (score - baseline)) as f32);
                let rate = window
                    .baseline_vote_rate
                    .map_or(settings.normal_vote_rate, f64::from);
                window.baseline_vote_rate = Some((rate + alpha * (voted - rate)) as f32);
                window.baseline_time_ms = sighting.time_ms;
            }
            // Out of order: the baseline only moves forward in time.
            Some(_) => {}
        }
        Fold::Folded
    }

    /// Drops messages that left the window and users idle for window + lateness; returns the
    /// users removed.
    pub fn expire(&mut self, settings: &WindowSettings) -> usize {
        let horizon = self.stream_time_ms - settings.window_ms;
        let idle_horizon = horizon - settings.allowed_lateness_ms;
        let before = self.users.len();
        let changed = &mut self.changed;
        self.users.retain(|user, window| {
            let mut moved = false;
            while window
                .sightings
                .front()
                .is_some_and(|s| s.time_ms < horizon)
            {
                window.sightings.pop_front();
                moved = true;
            }
            if moved && window.sightings.capacity() > 2 * window.sightings.len() {
                window.sightings.shrink_to_fit();
            }
            let keep = !window.sightings.is_empty() || window.last_seen_ms >= idle_horizon;
            if moved || !keep {
                changed.insert(user.clone());
            }
            keep
        });
        before - self.users.len()
    }

    /// Records that `user`'s window changed outside a fold (its last emitted risk).
    pub fn touch(&mut self, user: &str) {
        self.changed.insert(user.into());
    }

    fn user_entry(&self, user: &str) -> Option<Vec<u8>> {
        serde_json::to_vec(self.users.get(user)?).ok()
    }

    fn meta(&self) -> Vec<u8> {
        serde_json::to_vec(&MetaEntry {
            stream_time_ms: self.stream_time_ms,
            next_offset: self.next_offset,
            late_dropped: self.late_dropped,
        })
        .unwrap_or_default()
    }

    /// Window statistics of `user`, over messages not older than stream time − window.
    pub fn stats(&self, user: &str, settings: &WindowSettings) -> Option<WindowStats> {
        self.users.get(user)?.stats(self.stream_time_ms, settings)
    }
}

impl PartitionState for PartitionWindows {
    fn take_changes(&mut self) -> Vec<StateChange> {
        let mut changes: Vec<StateChange> = std::mem::take(&mut self.changed)
            .into_iter()
            .map(|user| {
                let value = self.user_entry(&user);
                (user.into_string(), value)
            })
            .collect();
        if std::mem::take(&mut self.meta_changed) {
            changes.push((META_KEY.to_owned(), Some(self.meta())));
        }
        changes
    }

    fn snapshot(&self) -> Vec<(String, Vec<u8>)> {
        let mut entries: Vec<(String, Vec<u8>)> = self
            .users
            .keys()
            .filter_map(|user| Some((user.to_string(), self.user_entry(user)?)))
            .collect();
        entries.push((META_KEY.to_owned(), self.meta()));
        entries
    }

    fn restore_entry(&mut self, key: &str, value: Option<&[u8]>) -> Result<(), String> {
        let Some(value) = value else {
            self.users.remove(key);
            return Ok(());
        };
        if key == META_KEY {
            let meta: MetaEntry = serde_json::from_slice(value).map_err(|e| e.to_string())?;
            self.stream_time_ms = self.stream_time_ms.max(meta.stream_time_ms);
            self.next_offset = self.next_offset.max(meta.next_offset);
            self.late_dropped = self.late_dropped.max(meta.late_dropped);
            return Ok(());
        }
        let window: UserWindow = serde_json::from_slice(value).map_err(|e| e.to_string())?;
        self.stream_time_ms = self.stream_time_ms.max(window.last_seen_ms);
        self.users.insert(key.into(), Box::new(window));
        Ok(())
    }

    fn entities(&self) -> usize {
        self.users.len()
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

impl UserWindow {
    /// Statistics over this user's messages not older than `stream_time_ms` − window.
    pub fn stats(&self, stream_time_ms: i64, settings: &WindowSettings) -> Option<WindowStats> {
        let window = self;
        let horizon = stream_time_ms - settings.window_ms;
        let scores: Vec<&Sighting> = window
            .sightings
            .iter()
            .filter(|s| s.time_ms >= horizon)
            .collect();
        if scores.is_empty() {
            return None;
        }
        let n = scores.len();
        let mut sorted: Vec<f64> = scores.iter().map(|s| f64::from(s.score)).collect();
        let mean_score = sorted.iter().sum::<f64>() / n as f64;
        sorted.sort_by(|a, b| b.total_cmp(a));
        let top = &sorted[..n.min(3)];
        let top3_mean = top.iter().sum::<f64>() / top.len() as f64;
        let voted_anomalies = scores.iter().filter(|s| s.voted).count();
        // A user whose mail is usually unusual is judged against their own rate.
        let expected_rate = window
            .baseline_vote_rate
            .map_or(0.0, f64::from)
            .max(settings.normal_vote_rate);
        let vote_surprise = vote_surprise(voted_anomalies, n, expected_rate);
        let recent_from = stream_time_ms - settings.trend_recent_ms;
        let recent: Vec<f64> = scores
            .iter()
            .filter(|s| s.time_ms >= recent_from)
            .map(|s| f64::from(s.score))
            .collect();
        let baseline = window.baseline.map_or(mean_score, f64::from);
        let recent_mean = if recent.is_empty() {
            baseline
        } else {
            recent.iter().sum::<f64>() / recent.len() as f64
        };
        Some(WindowStats {
            messages: n,
            mean_score,
            max_score: sorted[0],
            top3_mean,
            voted_anomalies,
            vote_surprise,
            recent_mean,
            baseline,
            trend: recent_mean - baseline,
            message_risk: (0.6 * vote_surprise + 0.4 * top3_mean).clamp(0.0, 1.0),
        })
    }
}

/// `P(X < k)` for `X ~ Binomial(n, p)`: 0 without anomalies, near 1 when `k` anomalies among
/// `n` messages would be rare for normal mail.
pub fn vote_surprise(k: usize, n: usize, p: f64) -> f64 {
    if k == 0 || n == 0 {
        return 0.0;
    }
    let p = p.clamp(1e-6, 1.0 - 1e-6);
    Binomial::new(p, n as u64)
        .map(|binomial| binomial.cdf(k as u64 - 1))
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000;
    const DAY: i64 = 24 * HOUR;

    fn sighting(time_ms: i64, score: f32, voted: bool) -> Sighting {
        Sighting {
            time_ms,
            score,
            voted,
        }
    }

    #[test]
    fn out_of_order_within_lateness_is_folded_in_place_and_later_is_dropped() {
        let settings = WindowSettings::default();
        let mut windows = PartitionWindows::default();
        assert_eq!(
            windows.fold(0, "a", sighting(10 * HOUR, 0.1, false), &settings),
            Fold::Folded
        );
        assert_eq!(
            windows.fold(1, "a", sighting(12 * HOUR, 0.2, false), &settings),
            Fold::Folded
        );
        // 30 minutes behind stream time: folded, in order.
        assert_eq!(
            windows.fold(
                2,
                "a",
                sighting(11 * HOUR + HOUR / 2, 0.3, false),
                &settings
            ),
            Fold::Folded
        );
        let times: Vec<i64> = windows.users["a"]
            .sightings
            .iter()
            .map(|s| s.time_ms)
            .collect();
        assert_eq!(times, [10 * HOUR, 11 * HOUR + HOUR / 2, 12 * HOUR]);
        // Two hours behind (lateness one hour): counted and dropped, even for a new user.
        assert_eq!(
            windows.fold(3, "b", sighting(10 * HOUR, 0.9, true), &settings),
            Fold::Late
        );
        assert_eq!(windows.late_dropped, 1);
        assert!(!windows.users.contains_key("b"));
        assert_eq!(windows.next_offset, 4);
        // Offsets below next_offset were already folded (a restored snapshot).
        assert_eq!(
            windows.fold(2, "a", sighting(12 * HOUR, 0.3, false), &settings),
            Fold::Replayed
        );
        assert_eq!(windows.users["a"].sightings.len(), 3);
    }

    #[test]
    fn messages_leave_the_window_and_idle_users_expire() {
        let settings = WindowSettings::default();
        let mut windows = PartitionWindows::default();
        windows.fold(0, "old", sighting(0, 0.5, false), &settings);
        windows.fold(1, "busy", sighting(DAY / 2, 0.5, false), &settings);
        windows.fold(2, "busy", sighting(8 * DAY, 0.5, false), &settings);
        // Stream time 8 days: "old" has nothing in the window but is idle only 8 days,
        // within window + lateness? No: 8 d > 7 d + 1 h.
        assert_eq!(windows.expire(&settings), 1);
        assert!(!windows.users.contains_key("old"));
        assert_eq!(windows.users["busy"].sightings.len(), 1);
        assert_eq!(windows.stats("busy", &settings).unwrap().messages, 1);
    }

    #[test]
    fn statistics_by_hand() {
        let settings = WindowSettings {
            normal_vote_rate: 0.05,
            ..WindowSettings::default()
        };
        let mut windows = PartitionWindows::default();
        let scores = [
            (0, 0.2, false),
            (DAY, 0.4, false),
            (5 * DAY, 0.9, true),
            (5 * DAY + HOUR, 0.8, true),
        ];
        for (offset, (time, score, voted)) in scores.into_iter().enumerate() {
            windows.fold(offset as i64, "u", sighting(time, score, voted), &settings);
        }
        let stats = windows.stats("u", &settings).unwrap();
        assert_eq!(stats.messages, 4);
        assert!((stats.mean_score - 0.575).abs() < 1e-6);
        assert!((stats.max_score - 0.9).abs() < 1e-6);
        assert!((stats.top3_mean - 0.7).abs() < 1e-6);
        assert_eq!(stats.voted_anomalies, 2);
        assert!((stats.recent_mean - 0.85).abs() < 1e-6);
        // Baselines: the score from 0.2 and the vote rate from 0.05, each moved by
        // 1 − e^(−Δt/τ) toward each later message.
        let tau = settings.baseline_tau_ms as f64;
        let (mut baseline, mut rate) = (0.2f64, 0.05f64);
        for (gap, score, voted) in [(DAY, 0.4f32, 0.0), (4 * DAY, 0.9, 1.0), (HOUR, 0.8, 1.0)] {
            let alpha = 1.0 - (-(gap as f64) / tau).exp();
            baseline += alpha * (f64::from(score) - baseline);
            rate += alpha * (voted - rate);
        }
        assert!(rate > 0.05);
        // P(X < 2) for Binomial(4, p) = (1 − p)⁴ + 4p(1 − p)³, p the user's own rate.
        let expected = (1.0 - rate).powi(4) + 4.0 * rate * (1.0 - rate).powi(3);
        // Baselines are kept in f32 (as the scores): equal to f64 arithmetic within 1e-6.
        assert!((stats.vote_surprise - expected).abs() < 1e-6);
        assert!((stats.baseline - baseline).abs() < 1e-6);
        assert!((stats.trend - (stats.recent_mean - stats.baseline)).abs() < 1e-9);
        let risk = 0.6 * stats.vote_surprise + 0.4 * stats.top3_mean;
        assert!((stats.message_risk - risk).abs() < 1e-12);
        assert!(windows.stats("nobody", &settings).is_none());
    }

    #[test]
    fn vote_surprise_grows_with_anomalies_and_shrinks_with_volume() {
        assert_eq!(vote_surprise(0, 10, 0.02), 0.0);
        assert!(vote_surprise(5, 20, 0.02) > 0.999);
        assert!(vote_surprise(1, 20, 0.02) < vote_surprise(3, 20, 0.02));
        assert!(vote_surprise(3, 200, 0.02) < vote_surprise(3, 20, 0.02));
    }

    #[test]
    fn snapshots_round_trip_exactly() {
        let settings = WindowSettings::default();
        let mut windows = PartitionWindows::default();
        for offset in 0..50 {
            let user = format!("u{}", offset % 7);
            windows.fold(
                offset,
                &user,
                sighting(offset * HOUR, (offset % 10) as f32 / 10.0, offset % 9 == 0),
                &settings,
            );
        }
        windows.users.get_mut("u1").unwrap().last_emitted = Some((0.25, 123));
        windows.touch("u1");
        // Rebuilt from the changelog records, or from the cache's full snapshot: the same.
        for entries in [
            windows.take_changes(),
            windows
                .snapshot()
                .into_iter()
                .map(|(key, value)| (key, Some(value)))
                .collect(),
        ] {
            let mut restored = PartitionWindows::default();
            for (key, value) in &entries {
                restored.restore_entry(key, value.as_deref()).unwrap();
            }
            assert_eq!(restored.users, windows.users);
            assert_eq!(restored.stream_time_ms, windows.stream_time_ms);
            assert_eq!(restored.next_offset, windows.next_offset);
            assert_eq!(restored.late_dropped, windows.late_dropped);
        }
        // An expired user becomes a tombstone that removes it on restore.
        windows.expire(&WindowSettings {
            window_ms: HOUR,
            allowed_lateness_ms: 0,
            ..settings
        });
        let changes = windows.take_changes();
        assert!(changes.iter().any(|(_, value)| value.is_none()));
    }
}
