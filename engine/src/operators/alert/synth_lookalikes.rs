//! Benign bursts that look like campaigns, for correlation figures (`generate alerts
//! --lookalikes`): activity a SOC owns that spans several hosts and tactics within an hour,
//! as an intrusion does. Labelled false positives with their own scenario names and no
//! campaign, so an incident built from them counts as false in `eval alert`.
//!
//! - `patch_day`: one administrator account installs and restarts services on 6–15 hosts
//!   within an hour — execution, persistence (a new service), defense evasion (registry
//!   changes, tools stopped) and impact (services stopped) rules fire.
//! - `owned_scanner`: the SOC's vulnerability scanner account sweeps 8–20 hosts within 30
//!   minutes — reconnaissance, discovery and initial-access (exploit attempt) rules fire.

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::Rng;

use super::{pick_severity, pick_time, Draft, GeneratorConfig, World};

const MINUTE_MS: i64 = 60_000;

/// Who does what, where and how fast in one burst.
struct Shape<'s> {
    user: String,
    tactics: &'s [&'s str],
    hosts: usize,
    span_minutes: i64,
    scenario: &'static str,
}

fn burst<'a>(
    rng: &mut StdRng,
    world: &'a World,
    config: &GeneratorConfig,
    shape: Shape<'_>,
) -> Vec<Draft<'a>> {
    let Shape {
        user,
        tactics,
        hosts,
        span_minutes,
        scenario,
    } = shape;
    let start = pick_time(rng, config, 0.7);
    let targets: Vec<_> = world.workstations.iter().chain(&world.servers).collect();
    let mut drafts = Vec::new();
    for index in 0..hosts {
        let tactic = tactics[index % tactics.len()];
        let Some(&rule) = world.rules_for_tactic(tactic).choose(rng) else {
            continue;
        };
        let Some(&host) = targets.choose(rng) else {
            continue;
        };
        drafts.push(Draft {
            rule: &world.rules[rule],
            time_ms: start + rng.gen_range(0..span_minutes.max(1)) * MINUTE_MS,
            user: Some(user.clone()),
            hosts: vec![host],
            severity: pick_severity(rng, [0.1, 0.3, 0.4, 0.2, 0.0]),
            ioc_count: 0,
            ips: vec![super::internal_ip(rng)],
            truth: 1,
            scenario,
        });
    }
    drafts
}

/// A patch run by an administrator (see the module doc).
pub(super) fn patch_day<'a>(
    rng: &mut StdRng,
    world: &'a World,
    config: &GeneratorConfig,
) -> Vec<Draft<'a>> {
    let admin = world.users[rng.gen_range(0..world.admins.max(1))].clone();
    let hosts = rng.gen_range(6..=15);
    let shape = Shape {
        user: admin,
        tactics: &["TA0002", "TA0003", "TA0005", "TA0040"],
        hosts,
        span_minutes: 60,
        scenario: "patch_day",
    };
    burst(rng, world, config, shape)
}

/// A sweep by the SOC's own vulnerability scanner (see the module doc).
pub(super) fn owned_scanner<'a>(
    rng: &mut StdRng,
    world: &'a World,
    config: &GeneratorConfig,
) -> Vec<Draft<'a>> {
    let hosts = rng.gen_range(8..=20);
    let shape = Shape {
        user: "svc-vulnscan".to_owned(),
        tactics: &["TA0043", "TA0007", "TA0001"],
        hosts,
        span_minutes: 30,
        scenario: "owned_scanner",
    };
    burst(rng, world, config, shape)
}

#[cfg(test)]
mod tests {
    use crate::operators::alert::synth::{generate, GeneratorConfig};

    #[test]
    fn lookalike_bursts_span_tactics_and_hosts_without_a_campaign() {
        let config = GeneratorConfig {
            count: 4000,
            lookalikes: true,
            ..GeneratorConfig::default()
        };
        let alerts = generate(&config);
        for scenario in ["patch_day", "owned_scanner"] {
            let burst: Vec<_> = alerts.iter().filter(|a| a.scenario == scenario).collect();
            assert!(burst.len() > 20, "{scenario}: {}", burst.len());
            assert!(burst.iter().all(|a| a.campaign.is_none()));
            let tactics: std::collections::HashSet<&String> =
                burst.iter().flat_map(|a| &a.alert.tactics).collect();
            assert!(tactics.len() >= 3, "{scenario}: {tactics:?}");
        }
        // Off by default, and the default stream is unchanged by the option's existence.
        let plain = generate(&GeneratorConfig {
            count: 4000,
            ..GeneratorConfig::default()
        });
        assert!(plain
            .iter()
            .all(|a| a.scenario != "patch_day" && a.scenario != "owned_scanner"));
    }
}
