//! The bootstrap data: a generator of labelled SIEM alerts grounded in MITRE ATT&CK, with
//! documented ground truth, reproducible from a seed (`threatflow generate alerts`).
//!
//! **World.** An organisation of users (a tenth are administrators, plus a vulnerability
//! scanner account) and hosts (workstations criticality 0.05–0.3, servers 0.4–0.7, crown
//! jewels such as domain controllers 0.85–1.0). Detection rules are drawn from ATT&CK
//! techniques weighted by how many known groups use them, at least two per tactic, each with
//! a SIEM (Splunk, Elastic, Sentinel, QRadar, or Chronicle as "other") and a noise propensity
//! (discovery, execution, defense-evasion and persistence rules are the noisy ones).
//!
//! **Scenarios → disposition (ground truth).**
//! - `intrusion` → `true_positive`: a real ATT&CK group's techniques in kill-chain order
//!   against one victim over 2–48 h; hosts move to servers and crown jewels after lateral
//!   movement; IOCs in 70% of alerts, an IP from the known-bad ranges in 35%, two distant
//!   networks for one account in 40% of initial-access alerts; 55% off hours.
//! - `noisy_rule` → `false_positive`: a noisy rule firing on benign (mostly administrator)
//!   activity on the user's usual hosts, repeatedly; business hours 80%; a threat-feed false
//!   match (1 IOC) in 8%, a known-bad IP in 2%, VPN hops (two networks) in 5%.
//! - `suspicious` → `suspicious`: isolated reconnaissance, discovery, credential or
//!   privilege steps by an ordinary user, half off hours, 1–2 IOCs in 25%, sometimes 2–3
//!   alerts close together.
//! - `benign` → `benign`: informational and low alerts (policy, scheduled scans — the
//!   scanner account fires discovery rules), business hours 85%, no IOCs.
//!
//! **Risk (ground truth, 0–100)** from the scenario's true disposition:
//! `base + 14·criticality + 8·stage/13 + 2·min(ioc, 5) + 6·[off hours ∧ malicious] + N(0, 3)`,
//! clamped, with base 62 (true positive), 38 (suspicious), 12 (false positive), 4 (benign)
//! and `stage` the latest tactic's kill-chain position.
//!
//! **Label noise.** 5% of dispositions are flipped (80% to the neighbouring class:
//! true_positive ↔ suspicious, false_positive ↔ benign; 20% to any other class); the risk
//! keeps the true disposition, as an analyst's mislabel would not change the harm.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

#[path = "synth_lookalikes.rs"]
mod lookalikes;
use serde::{Deserialize, Serialize};

use crate::events::AlertEvent;
use crate::operators::alert::attack::{catalogue, Catalogue};

/// The four dispositions, in model output order.
pub const DISPOSITIONS: [&str; 4] = ["true_positive", "false_positive", "suspicious", "benign"];

/// Known-bad ranges the generator draws attacker IPs from; `models/alert/rules.toml` lists
/// the same ranges as its threat feed (RFC 5737 documentation networks, never routed).
pub const KNOWN_BAD_PREFIXES: [&str; 3] = ["203.0.113.", "198.51.100.", "192.0.2."];

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;
/// 2026-09-01T00:00:00Z, a Tuesday.
const DEFAULT_START_MS: i64 = 1_788_220_800_000;

/// One generated alert with its labels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabeledAlert {
    /// The alert as the SIEM sends it.
    #[serde(flatten)]
    pub alert: AlertEvent,
    /// Ground-truth disposition (after label noise).
    pub disposition: String,
    /// Ground-truth risk 0–100.
    pub risk: f64,
    /// Scenario that produced it.
    pub scenario: String,
    /// For intrusions, the one intrusion it belongs to (`intrusion-<n>`): the truth of
    /// incident recall and purity in `eval alert`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub campaign: Option<String>,
    /// Part of the warm-up prefix of a held-out file: fed to the entity history, not scored.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub warmup: bool,
}

/// Generator settings.
#[derive(Debug, Clone, PartialEq)]
pub struct GeneratorConfig {
    /// Seed; same seed, same alerts.
    pub seed: u64,
    /// Alerts to generate (at least).
    pub count: usize,
    /// Days the alerts span.
    pub days: i64,
    /// Start of the span, epoch ms.
    pub start_ms: i64,
    /// Add benign bursts that look like campaigns (patch days, the SOC's own scanner; see
    /// `synth_lookalikes.rs`), about one per 400 alerts. Off by default: the shipped
    /// model's data is generated without them.
    pub lookalikes: bool,
}

impl Default for GeneratorConfig {
    fn default() -> Self {
        Self {
            seed: 20_261_123,
            count: 30_000,
            days: 42,
            start_ms: DEFAULT_START_MS,
            lookalikes: false,
        }
    }
}

struct Host {
    name: String,
    criticality: f64,
}

struct DetectionRule {
    id: String,
    name: String,
    source: &'static str,
    technique: String,
    tactics: Vec<String>,
    noise: f64,
}

struct World {
    users: Vec<String>,
    admins: usize,
    workstations: Vec<Host>,
    servers: Vec<Host>,
    crown_jewels: Vec<Host>,
    rules: Vec<DetectionRule>,
}

const FIRST: [&str; 24] = [
    "ana", "ben", "carla", "dev", "eva", "farid", "gina", "hugo", "ines", "jon", "kim", "liam",
    "maya", "nils", "olga", "pedro", "quinn", "rosa", "sam", "tara", "uma", "victor", "wen",
    "yusuf",
];
const LAST: [&str; 20] = [
    "adams", "baker", "chen", "diaz", "evans", "fischer", "garcia", "haddad", "ito", "jones",
    "kowalski", "lopez", "meyer", "novak", "okafor", "patel", "rossi", "silva", "tanaka", "weber",
];
const SOURCES: [(&str, &str); 5] = [
    ("splunk", "SPL"),
    ("elastic", "ELA"),
    ("sentinel", "SEN"),
    ("qradar", "QRA"),
    ("chronicle", "CHR"),
];
/// Tactics whose rules fire on benign activity most (discovery, execution, persistence,
/// defense evasion).
const NOISY_TACTICS: [&str; 4] = ["TA0007", "TA0002", "TA0003", "TA0005"];

fn normal(rng: &mut StdRng) -> f64 {
    // Box–Muller; 1 − u keeps the logarithm finite.
    let u: f64 = 1.0 - rng.gen::<f64>();
    let v: f64 = rng.gen();
    (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
}

fn hosts(rng: &mut StdRng, prefix: &str, count: usize, low: f64, high: f64) -> Vec<Host> {
    (0..count)
        .map(|index| Host {
            name: format!("{prefix}-{index:03}"),
            criticality: (rng.gen_range(low..high) * 100.0).round() / 100.0,
        })
        .collect()
}

impl World {
    fn new(rng: &mut StdRng, catalogue: &Catalogue) -> Self {
        let mut users: Vec<String> = FIRST
            .iter()
            .flat_map(|first| LAST.iter().map(move |last| format!("{first}.{last}")))
            .collect();
        users.shuffle(rng);
        users.truncate(360);
        let admins = users.len() / 10;
        let mut usage: BTreeMap<&str, usize> = BTreeMap::new();
        for group in &catalogue.groups {
            for technique in &group.techniques {
                *usage.entry(technique.as_str()).or_default() += 1;
            }
        }
        let mut rules = Vec::new();
        for tactic in &catalogue.tactics {
            let mut candidates: Vec<(&str, usize)> = catalogue
                .techniques
                .iter()
                .filter(|technique| technique.tactics.contains(&tactic.id))
                .map(|technique| {
                    let used = usage.get(technique.id.as_str()).copied().unwrap_or(0);
                    (technique.id.as_str(), used + 1)
                })
                .collect();
            let per_tactic = if NOISY_TACTICS.contains(&tactic.id.as_str()) {
                6
            } else {
                3
            };
            for _ in 0..per_tactic {
                let Ok(&(technique_id, _)) = candidates.choose_weighted(rng, |c| c.1) else {
                    break;
                };
                candidates.retain(|candidate| candidate.0 != technique_id);
                let Some(technique) = catalogue.technique(technique_id) else {
                    continue;
                };
                let (source, prefix) = SOURCES[rng.gen_range(0..SOURCES.len())];
                let noisy = technique
                    .tactics
                    .iter()
                    .any(|t| NOISY_TACTICS.contains(&t.as_str()));
                rules.push(DetectionRule {
                    id: format!("{prefix}-{:04}", rules.len() + 100),
                    name: format!("Possible {}", technique.name),
                    source,
                    technique: technique.id.clone(),
                    tactics: technique.tactics.clone(),
                    noise: if noisy {
                        rng.gen_range(0.4..1.0)
                    } else {
                        rng.gen_range(0.02..0.4)
                    },
                });
            }
        }
        Self {
            users,
            admins,
            workstations: hosts(rng, "ws", 420, 0.05, 0.3),
            servers: hosts(rng, "srv", 80, 0.4, 0.7),
            crown_jewels: hosts(rng, "dc", 12, 0.85, 1.0),
            rules,
        }
    }

    fn home_host(&self, user: usize) -> &Host {
        &self.workstations[user % self.workstations.len()]
    }

    fn admin_server(&self, user: usize, pick: usize) -> &Host {
        &self.servers[(user * 7 + pick) % self.servers.len()]
    }

    fn rules_for_tactic(&self, tactic: &str) -> Vec<usize> {
        (0..self.rules.len())
            .filter(|&index| self.rules[index].tactics.iter().any(|t| t == tactic))
            .collect()
    }
}

/// What one generated alert is about, before it is turned into an [`AlertEvent`].
struct Draft<'a> {
    rule: &'a DetectionRule,
    time_ms: i64,
    user: Option<String>,
    hosts: Vec<&'a Host>,
    severity: &'static str,
    ioc_count: i32,
    ips: Vec<String>,
    truth: usize,
    scenario: &'static str,
}

fn pick_severity(rng: &mut StdRng, weights: [f64; 5]) -> &'static str {
    const SEVERITIES: [&str; 5] = ["informational", "low", "medium", "high", "critical"];
    let roll = rng.gen::<f64>() * weights.iter().sum::<f64>();
    let mut total = 0.0;
    for (severity, weight) in SEVERITIES.iter().zip(weights) {
        total += weight;
        if roll < total {
            return severity;
        }
    }
    "medium"
}

/// A time inside business hours (08–18 UTC on a weekday) with probability
/// `business_share`, outside otherwise.
fn pick_time(rng: &mut StdRng, config: &GeneratorConfig, business_share: f64) -> i64 {
    let business = rng.gen_bool(business_share);
    let day = rng.gen_range(0..config.days);
    let mut day_start = config.start_ms + day * DAY_MS;
    let weekday = (day_start / DAY_MS + 3).rem_euclid(7);
    if business && weekday >= 5 {
        day_start += (7 - weekday) * DAY_MS;
    }
    let hour = if business {
        rng.gen_range(8..18)
    } else {
        [0, 1, 2, 3, 4, 5, 6, 7, 18, 19, 20, 21, 22, 23][rng.gen_range(0..14)]
    };
    day_start + hour * HOUR_MS + rng.gen_range(0..HOUR_MS)
}

fn internal_ip(rng: &mut StdRng) -> String {
    format!(
        "10.{}.{}.{}",
        rng.gen_range(0..40),
        rng.gen_range(0..255),
        rng.gen_range(1..255)
    )
}

fn public_ip(rng: &mut StdRng) -> String {
    format!(
        "{}.{}.{}.{}",
        [23, 34, 52, 81, 91, 104, 142, 185][rng.gen_range(0..8)],
        rng.gen_range(0..255),
        rng.gen_range(0..255),
        rng.gen_range(1..255)
    )
}

fn known_bad_ip(rng: &mut StdRng) -> String {
    let prefix = KNOWN_BAD_PREFIXES[rng.gen_range(0..KNOWN_BAD_PREFIXES.len())];
    format!("{prefix}{}", rng.gen_range(1..255))
}

fn intrusion<'a>(rng: &mut StdRng, world: &'a World, config: &GeneratorConfig) -> Vec<Draft<'a>> {
    let catalogue = catalogue();
    let Some(group) = catalogue.groups.choose(rng) else {
        return Vec::new();
    };
    let mut steps: Vec<(usize, String)> = group
        .techniques
        .iter()
        .filter_map(|id| catalogue.technique(id))
        .filter_map(|technique| {
            let tactic = technique.tactics.choose(rng)?;
            Some((catalogue.tactic_stage(tactic)?, tactic.clone()))
        })
        .collect();
    steps.shuffle(rng);
    steps.truncate(rng.gen_range(3..=9));
    steps.sort();
    let user = rng.gen_range(0..world.users.len());
    let mut time_ms = pick_time(rng, config, 0.45);
    let end_ms = time_ms + rng.gen_range(2..=48) * HOUR_MS;
    let step_ms = (end_ms - time_ms) / (steps.len() as i64 + 1);
    let mut host = world.home_host(user);
    let mut drafts = Vec::new();
    for (stage, tactic) in steps {
        if stage >= 8 {
            host = if rng.gen_bool(0.5) {
                &world.crown_jewels[rng.gen_range(0..world.crown_jewels.len())]
            } else {
                &world.servers[rng.gen_range(0..world.servers.len())]
            };
        }
        let candidates = world.rules_for_tactic(&tactic);
        let Some(&rule) = candidates.choose(rng) else {
            continue;
        };
        let mut ips = vec![internal_ip(rng)];
        if rng.gen_bool(0.35) {
            ips.push(known_bad_ip(rng));
        }
        if tactic == "TA0001" && rng.gen_bool(0.4) {
            ips.push(public_ip(rng));
            ips.push(public_ip(rng));
        }
        drafts.push(Draft {
            rule: &world.rules[rule],
            time_ms,
            user: Some(world.users[user].clone()),
            hosts: vec![host],
            severity: pick_severity(rng, [0.0, 0.05, 0.25, 0.45, 0.25]),
            ioc_count: if rng.gen_bool(0.7) {
                rng.gen_range(1..=5)
            } else {
                0
            },
            ips,
            truth: 0,
            scenario: "intrusion",
        });
        time_ms += step_ms + rng.gen_range(0..step_ms.max(1));
    }
    drafts
}

fn noisy_rule<'a>(rng: &mut StdRng, world: &'a World, config: &GeneratorConfig) -> Vec<Draft<'a>> {
    let Ok(rule) = world
        .rules
        .choose_weighted(rng, |rule| rule.noise * rule.noise)
    else {
        return Vec::new();
    };
    let user = if rng.gen_bool(0.6) {
        rng.gen_range(0..world.admins)
    } else {
        rng.gen_range(0..world.users.len())
    };
    let host = if user < world.admins {
        world.admin_server(user, rng.gen_range(0..3))
    } else {
        world.home_host(user)
    };
    let repeats = if rng.gen_bool(0.5) {
        rng.gen_range(2..=5)
    } else {
        1
    };
    let mut time_ms = pick_time(rng, config, 0.8);
    (0..repeats)
        .map(|_| {
            let mut ips = vec![internal_ip(rng)];
            if rng.gen_bool(0.02) {
                ips.push(known_bad_ip(rng));
            }
            if rng.gen_bool(0.05) {
                ips.push(public_ip(rng));
                ips.push(public_ip(rng));
            }
            let draft = Draft {
                rule,
                time_ms,
                user: Some(world.users[user].clone()),
                hosts: vec![host],
                severity: pick_severity(rng, [0.0, 0.25, 0.4, 0.3, 0.05]),
                ioc_count: i32::from(rng.gen_bool(0.08)),
                ips,
                truth: 1,
                scenario: "noisy_rule",
            };
            time_ms += rng.gen_range(10..240) * 60_000;
            draft
        })
        .collect()
}

fn suspicious<'a>(rng: &mut StdRng, world: &'a World, config: &GeneratorConfig) -> Vec<Draft<'a>> {
    let tactic = ["TA0043", "TA0007", "TA0006", "TA0004", "TA0008", "TA0009"][rng.gen_range(0..6)];
    let candidates = world.rules_for_tactic(tactic);
    let user = rng.gen_range(world.admins..world.users.len());
    let host = if rng.gen_bool(0.3) {
        &world.servers[rng.gen_range(0..world.servers.len())]
    } else {
        world.home_host(user)
    };
    let count = if rng.gen_bool(0.3) {
        rng.gen_range(2..=3)
    } else {
        1
    };
    let mut time_ms = pick_time(rng, config, 0.5);
    (0..count)
        .filter_map(|_| {
            let rule = *candidates.choose(rng)?;
            let draft = Draft {
                rule: &world.rules[rule],
                time_ms,
                user: Some(world.users[user].clone()),
                hosts: vec![host],
                severity: pick_severity(rng, [0.0, 0.2, 0.5, 0.3, 0.0]),
                ioc_count: if rng.gen_bool(0.25) {
                    rng.gen_range(1..=2)
                } else {
                    0
                },
                ips: vec![internal_ip(rng)],
                truth: 2,
                scenario: "suspicious",
            };
            time_ms += rng.gen_range(5..90) * 60_000;
            Some(draft)
        })
        .collect()
}

fn benign<'a>(rng: &mut StdRng, world: &'a World, config: &GeneratorConfig) -> Vec<Draft<'a>> {
    let scanner = rng.gen_bool(0.3);
    let rule = if scanner {
        world.rules_for_tactic("TA0007").choose(rng).copied()
    } else {
        Some(rng.gen_range(0..world.rules.len()))
    };
    let Some(rule) = rule else {
        return Vec::new();
    };
    let (user, host) = if scanner {
        (
            "svc-vulnscan".to_owned(),
            &world.servers[rng.gen_range(0..world.servers.len())],
        )
    } else {
        let user = rng.gen_range(0..world.users.len());
        (world.users[user].clone(), world.home_host(user))
    };
    vec![Draft {
        rule: &world.rules[rule],
        time_ms: pick_time(rng, config, 0.85),
        user: Some(user),
        hosts: vec![host],
        severity: pick_severity(rng, [0.5, 0.4, 0.1, 0.0, 0.0]),
        ioc_count: 0,
        ips: vec![internal_ip(rng)],
        truth: 3,
        scenario: "benign",
    }]
}

fn ground_truth_risk(rng: &mut StdRng, draft: &Draft<'_>, off_hours: bool) -> f64 {
    const BASE: [f64; 4] = [62.0, 12.0, 38.0, 4.0];
    let catalogue = catalogue();
    let stage = draft
        .rule
        .tactics
        .iter()
        .filter_map(|tactic| catalogue.tactic_stage(tactic))
        .max()
        .unwrap_or(0) as f64;
    let criticality = draft
        .hosts
        .iter()
        .map(|host| host.criticality)
        .fold(0.0, f64::max);
    let malicious = draft.truth == 0 || draft.truth == 2;
    let risk = BASE[draft.truth]
        + 14.0 * criticality
        + 8.0 * stage / 13.0
        + 2.0 * f64::from(draft.ioc_count.min(5))
        + if off_hours && malicious { 6.0 } else { 0.0 }
        + 3.0 * normal(rng);
    (risk.clamp(0.0, 100.0) * 10.0).round() / 10.0
}

fn noisy_label(rng: &mut StdRng, truth: usize) -> usize {
    if !rng.gen_bool(0.05) {
        return truth;
    }
    if rng.gen_bool(0.8) {
        return [2, 3, 0, 1][truth];
    }
    let other = rng.gen_range(0..3);
    if other >= truth {
        other + 1
    } else {
        other
    }
}

/// Whether `time_ms` is outside 08–18 UTC on a weekday.
pub fn is_off_hours(time_ms: i64) -> bool {
    let hour = (time_ms / HOUR_MS).rem_euclid(24);
    let weekday = (time_ms / DAY_MS + 3).rem_euclid(7);
    !(8..18).contains(&hour) || weekday >= 5
}

fn finish(rng: &mut StdRng, draft: Draft<'_>, index: usize) -> LabeledAlert {
    let duration_ms = rng.gen_range(0..(90 * 60_000));
    let event_count = (rng.gen::<f64>().powi(3) * 200.0) as i32 + 1;
    let off_hours = is_off_hours(draft.time_ms);
    let risk = ground_truth_risk(rng, &draft, off_hours);
    let disposition = DISPOSITIONS[noisy_label(rng, draft.truth)].to_owned();
    let alert = AlertEvent {
        event_id: None,
        alert_id: format!("{}-{index:07}", draft.rule.source),
        severity: draft.severity.to_owned(),
        siem_source: draft.rule.source.to_owned(),
        rule_id: draft.rule.id.clone(),
        rule_name: draft.rule.name.clone(),
        tactics: draft.rule.tactics.clone(),
        techniques: vec![draft.rule.technique.clone()],
        users: draft.user.into_iter().collect(),
        hosts: draft.hosts.iter().map(|host| host.name.clone()).collect(),
        ips: draft.ips,
        ioc_count: draft.ioc_count,
        asset_count: i32::try_from(draft.hosts.len()).unwrap_or(1),
        asset_criticality: draft
            .hosts
            .iter()
            .map(|host| host.criticality)
            .fold(0.0, f64::max),
        event_count,
        first_seen_ms: draft.time_ms - duration_ms,
        last_seen_ms: draft.time_ms,
    };
    LabeledAlert {
        alert,
        disposition,
        risk,
        scenario: draft.scenario.to_owned(),
        campaign: None,
        warmup: false,
    }
}

/// Generates at least `config.count` alerts, ordered by `last_seen_ms`.
pub fn generate(config: &GeneratorConfig) -> Vec<LabeledAlert> {
    let mut rng = StdRng::seed_from_u64(config.seed);
    let world = World::new(&mut rng, catalogue());
    let mut drafts = Vec::new();
    let mut campaigns = 0;
    while drafts.len() < config.count {
        if config.lookalikes && rng.gen_bool(0.03) {
            let burst = if rng.gen_bool(0.5) {
                lookalikes::patch_day(&mut rng, &world, config)
            } else {
                lookalikes::owned_scanner(&mut rng, &world, config)
            };
            drafts.extend(burst.into_iter().map(|draft| (draft, None)));
            continue;
        }
        let roll: f64 = rng.gen();
        let (scenario, campaign) = if roll < 0.025 {
            campaigns += 1;
            (intrusion(&mut rng, &world, config), Some(campaigns))
        } else if roll < 0.52 {
            (noisy_rule(&mut rng, &world, config), None)
        } else if roll < 0.70 {
            (suspicious(&mut rng, &world, config), None)
        } else {
            (benign(&mut rng, &world, config), None)
        };
        drafts.extend(scenario.into_iter().map(|draft| (draft, campaign)));
    }
    drafts.sort_by_key(|(draft, _)| draft.time_ms);
    drafts
        .into_iter()
        .enumerate()
        .map(|(index, (draft, campaign))| {
            let mut labeled = finish(&mut rng, draft, index);
            labeled.campaign = campaign.map(|n| format!("intrusion-{n}"));
            labeled
        })
        .collect()
}

/// `alerts[start..]` prefixed by the alerts before `start` from the 24 h before
/// `alerts[start]`, marked `warmup` (so entity history starts as it would in production).
pub fn with_warmup(alerts: &[LabeledAlert], start: usize) -> Vec<LabeledAlert> {
    let start = start.min(alerts.len());
    let cut_ms = alerts
        .get(start)
        .map_or(i64::MAX, |alert| alert.alert.last_seen_ms);
    let mut prefixed: Vec<LabeledAlert> = alerts[..start]
        .iter()
        .filter(|alert| alert.alert.last_seen_ms > cut_ms - DAY_MS)
        .cloned()
        .map(|mut alert| {
            alert.warmup = true;
            alert
        })
        .collect();
    prefixed.extend_from_slice(&alerts[start..]);
    prefixed
}

/// Splits a time-ordered stream: the first `1 − holdout_fraction` is the training part; the
/// rest is the held-out part, after a day of warm-up rows ([`with_warmup`]).
pub fn split(
    alerts: Vec<LabeledAlert>,
    holdout_fraction: f64,
) -> (Vec<LabeledAlert>, Vec<LabeledAlert>) {
    let train_rows = ((alerts.len() as f64) * (1.0 - holdout_fraction)).round() as usize;
    let train_rows = train_rows.min(alerts.len());
    let holdout = with_warmup(&alerts, train_rows);
    let mut train = alerts;
    train.truncate(train_rows);
    (train, holdout)
}

/// Writes alerts as JSON lines.
pub fn write_jsonl(path: &Path, alerts: &[LabeledAlert]) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    for alert in alerts {
        serde_json::to_writer(&mut out, alert)?;
        out.write_all(b"\n")?;
    }
    out.flush()
}

/// Reads alerts written by [`write_jsonl`]; the error names the line.
pub fn read_jsonl(text: &str) -> Result<Vec<LabeledAlert>, String> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(number, line)| {
            serde_json::from_str(line).map_err(|error| format!("line {}: {error}", number + 1))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> GeneratorConfig {
        GeneratorConfig {
            count: 3000,
            ..GeneratorConfig::default()
        }
    }

    #[test]
    fn same_seed_same_alerts_in_time_order() {
        let first = generate(&small());
        assert_eq!(first, generate(&small()));
        assert!(first.len() >= 3000);
        assert!(first
            .windows(2)
            .all(|pair| pair[0].alert.last_seen_ms <= pair[1].alert.last_seen_ms));
        let other = generate(&GeneratorConfig { seed: 1, ..small() });
        assert_ne!(first, other);
    }

    #[test]
    fn every_class_appears_with_real_attack_ids_and_valid_fields() {
        let alerts = generate(&small());
        let catalogue = catalogue();
        for disposition in DISPOSITIONS {
            let share = alerts
                .iter()
                .filter(|a| a.disposition == disposition)
                .count() as f64
                / alerts.len() as f64;
            assert!(share > 0.05, "{disposition}: {share}");
        }
        for labeled in &alerts {
            let alert = &labeled.alert;
            assert!(alert
                .tactics
                .iter()
                .all(|t| catalogue.tactic_stage(t).is_some()));
            assert!(alert
                .techniques
                .iter()
                .all(|t| catalogue.technique(t).is_some()));
            assert!((0.0..=1.0).contains(&alert.asset_criticality));
            assert!(alert.first_seen_ms <= alert.last_seen_ms);
            assert!((0.0..=100.0).contains(&labeled.risk));
        }
        let mean_risk = |disposition: &str| {
            let risks: Vec<f64> = alerts
                .iter()
                .filter(|a| a.scenario == disposition)
                .map(|a| a.risk)
                .collect();
            risks.iter().sum::<f64>() / risks.len() as f64
        };
        assert!(mean_risk("intrusion") > mean_risk("suspicious"));
        assert!(mean_risk("suspicious") > mean_risk("noisy_rule"));
        assert!(mean_risk("noisy_rule") > mean_risk("benign"));
    }

    #[test]
    fn split_keeps_time_order_and_marks_a_warmup_day() {
        let alerts = generate(&small());
        let total = alerts.len();
        let (train, holdout) = split(alerts, 0.2);
        let scored = holdout.iter().filter(|a| !a.warmup).count();
        assert_eq!(train.len() + scored, total);
        let cut = holdout
            .iter()
            .find(|a| !a.warmup)
            .map(|a| a.alert.last_seen_ms)
            .unwrap_or_default();
        assert!(holdout
            .iter()
            .filter(|a| a.warmup)
            .all(|a| a.alert.last_seen_ms <= cut && a.alert.last_seen_ms > cut - DAY_MS));
        assert!(train.iter().all(|a| a.alert.last_seen_ms <= cut));
        let text: String = holdout
            .iter()
            .map(|a| serde_json::to_string(a).unwrap_or_default() + "\n")
            .collect();
        assert_eq!(read_jsonl(&text).as_deref(), Ok(&holdout[..]));
    }

    #[test]
    fn off_hours_uses_utc_business_hours_on_weekdays() {
        // 2026-09-01 (Tuesday) 09:00 and 19:00 UTC, and Saturday 2026-09-05 10:00.
        assert!(!is_off_hours(DEFAULT_START_MS + 9 * HOUR_MS));
        assert!(is_off_hours(DEFAULT_START_MS + 19 * HOUR_MS));
        assert!(is_off_hours(DEFAULT_START_MS + 4 * DAY_MS + 10 * HOUR_MS));
    }
}
