//! Live threat intelligence on a real broker: two engine processes share an alert topic's
//! two partitions and follow one intel topic. Alerts carrying an address no intel lists are
//! scored plainly; then an intel team publishes one indicator record, and the next alerts
//! with that address — on both partitions, so on both processes — carry the intel hit
//! (label, explanation, the `known-bad-ioc` rule) and a higher risk.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use threatflow::events::InputEvent;
use threatflow::generate::encode_json;
use threatflow::operators::alert::synth::{generate, GeneratorConfig};
use threatflow::scored::Scored;
use threatflow_e2e::{consume_scored, http_get, unique_name, Broker, OperatorEngine, TestTopics};

const ADDRESS: &str = "100.64.7.7";

fn alerts_with_address(seed: u64, count: usize) -> Vec<Vec<u8>> {
    generate(&GeneratorConfig {
        seed,
        count,
        ..GeneratorConfig::default()
    })
    .into_iter()
    .take(count)
    .map(|labeled| {
        let mut alert = labeled.alert;
        alert.ips = vec![ADDRESS.to_owned()];
        encode_json(&InputEvent::Alert(Box::new(alert)))
    })
    .collect()
}

/// Waits until `/metrics` of `engine` has a line containing every one of `parts`.
fn wait_for_metric(engine: &OperatorEngine, parts: &[&str], what: &str) {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let metrics = http_get(&engine.http, "/metrics")
            .map(|(_, body)| body)
            .unwrap_or_default();
        if metrics
            .lines()
            .any(|line| parts.iter().all(|part| line.contains(part)))
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what} never happened:\n{}",
            engine.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn scored_after(records: &[Scored], skip: &HashMap<i32, i64>) -> Vec<Scored> {
    records
        .iter()
        .filter(|record| {
            record.source.offset >= skip.get(&record.source.partition).copied().unwrap_or(0)
        })
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_indicator_published_on_the_intel_topic_reaches_every_engine_process() {
    let broker = Broker::start().unwrap();
    let topics = TestTopics::create(&broker, 2).unwrap();
    let intel_topic = unique_name("intel");
    broker.create_topic(&intel_topic, 1).unwrap();
    let extra = format!("\n[operators.alert]\nintel_topic = \"{intel_topic}\"\n");
    let binary = Path::new(env!("CARGO_BIN_EXE_threatflow-under-test"));
    let engines = [
        OperatorEngine::start(binary, &broker, &topics, ("alert", "alert"), &extra).unwrap(),
        OperatorEngine::start(binary, &broker, &topics, ("alert", "alert"), &extra).unwrap(),
    ];
    for engine in &engines {
        wait_for_metric(
            engine,
            &["threatflow_assigned_partitions", " 1"],
            "one partition each",
        );
    }

    let before = alerts_with_address(7, 40);
    let landed = threatflow_e2e::produce(&broker.bootstrap, &topics.input, &before)
        .await
        .unwrap();
    let partitions: std::collections::BTreeSet<i32> = landed.iter().map(|(p, _)| *p).collect();
    assert_eq!(partitions.len(), 2, "alerts on both partitions");
    let read = |count: usize| {
        consume_scored(
            &broker.bootstrap,
            &[&topics.output],
            2,
            Duration::from_secs(90),
            |r| r.get(&topics.output).map_or(0, Vec::len) >= count,
        )
        .remove(&topics.output)
        .unwrap_or_default()
    };
    let plain = read(before.len());
    assert_eq!(plain.len(), before.len(), "{}", engines[0].logs());
    assert!(plain.iter().all(|record| record.labels["intel"].is_empty()));

    let indicator = br#"{"kind": "ip", "value": "100.64.7.0/24", "confidence": 95, "source": "SOC intel", "label": "phishing kit host"}"#;
    threatflow_e2e::produce(&broker.bootstrap, &intel_topic, &[indicator.to_vec()])
        .await
        .unwrap();
    for engine in &engines {
        wait_for_metric(
            engine,
            &[
                "threatflow_intel_updates_total",
                "outcome=\"applied\"",
                " 1",
            ],
            "the indicator applied on every process",
        );
    }

    let mut next_offsets = HashMap::new();
    for (partition, offset) in &landed {
        let next = next_offsets.entry(*partition).or_insert(0);
        *next = (*next).max(offset + 1);
    }
    let after = alerts_with_address(7, 40);
    threatflow_e2e::produce(&broker.bootstrap, &topics.input, &after)
        .await
        .unwrap();
    let all = read(before.len() + after.len());
    let hit = scored_after(&all, &next_offsets);
    assert_eq!(hit.len(), after.len(), "{}", engines[1].logs());
    let hit_partitions: std::collections::BTreeSet<i32> =
        hit.iter().map(|record| record.source.partition).collect();
    assert_eq!(
        hit_partitions.len(),
        2,
        "both processes scored the new alerts"
    );
    for record in &hit {
        assert_eq!(record.labels["intel"], "100.64.7.0/24");
        assert!(record.labels["rule_hits"]
            .split(',')
            .any(|rule| rule == "known-bad-ioc"));
        let explained = record
            .explanation
            .iter()
            .find(|c| c.name == "intel:100.64.7.0/24")
            .expect("explained");
        assert_eq!(explained.value, Some(0.95));
        assert!(explained.detail.as_deref().unwrap().contains("SOC intel"));
    }
    // The same alerts (one generator seed), scored higher with the indicator than without.
    let (plain_mean, hit_mean) = (
        plain.iter().map(|r| r.scores["risk"]).sum::<f64>() / plain.len() as f64,
        hit.iter().map(|r| r.scores["risk"]).sum::<f64>() / hit.len() as f64,
    );
    assert!(
        hit_mean > plain_mean + 10.0,
        "mean risk {plain_mean:.1} → {hit_mean:.1}"
    );
}
