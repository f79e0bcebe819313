//! `threatflow demo --serve`: a live demo to look at. The embedded broker, a steady generated
//! mix of every stream (with occasional attacks, as the generator makes them, and a share of
//! bad input) and the engine keep running; the analyst console and the scoring API are served
//! on `--http` (default `127.0.0.1:8080`) until Ctrl-C, which stops everything cleanly.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::mocking::MockCluster;
use rdkafka::producer::{DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::ClientConfig;
use tokio_util::sync::CancellationToken;

use crate::demo::{create_engine_topics, demo_config, DemoTopics, DEMO_TOPIC_PARTITIONS};
use crate::generate::{encode_json, BadInput, EventGenerator};
use crate::source::Health;

/// Options of `demo --serve`.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Events per second over all streams.
    pub rate: u64,
    /// Where the console and the API listen.
    pub http: String,
    /// Share of bad input.
    pub bad_ratio: f64,
    /// Generator seed.
    pub seed: u64,
    /// Admin token of the console's model actions (empty: a random one, printed).
    pub admin_token: String,
}

/// Runs until Ctrl-C (or SIGTERM). Prints the console's URL once it is served.
pub fn run(options: &ServeOptions) -> anyhow::Result<()> {
    let cluster = MockCluster::new(1)?;
    let brokers = cluster.bootstrap_servers();
    let topics = DemoTopics::with_suffix("");
    for name in topics.all() {
        cluster.create_topic(name, DEMO_TOPIC_PARTITIONS, 1)?;
    }
    let group = "threatflow-demo".to_owned();
    let mut config = demo_config(&brokers, &group, &topics);
    config.http.bind = options.http.clone();
    config.http.model_admin = true;
    config.http.admin_token = if options.admin_token.is_empty() {
        format!("{:016x}", rand::random::<u64>())
    } else {
        options.admin_token.clone()
    };
    config.validate()?;
    create_engine_topics(&cluster, &config)?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let shutdown = CancellationToken::new();
    let health = Arc::new(Health::default());
    let address = runtime.block_on(async {
        crate::shutdown::cancel_on_signal(shutdown.clone());
        crate::http::serve(&config, health.clone(), shutdown.clone()).await
    })?;
    let engine = {
        let (config, shutdown, health) = (config.clone(), shutdown.clone(), health.clone());
        std::thread::Builder::new()
            .name("threatflow-engine".into())
            .spawn(move || crate::pipeline::run(&config, shutdown, health))?
    };
    println!("threatflow demo: console at http://{address}/console (Ctrl-C stops)");
    println!("  scoring API: POST http://{address}/v1/score/{{prompt,flow,email,alert,address}}, POST http://{address}/v1/scan/prompt");
    println!(
        "  admin token for promote/rollback on the Models page: {}",
        config.http.admin_token
    );

    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("linger.ms", "5")
        .create()?;
    let inputs: Vec<(crate::events::SchemaKind, &str)> = topics.inputs().collect();
    let mut generator = EventGenerator::new(options.seed);
    let started = Instant::now();
    let (mut produced, mut bad_budget, mut bad_index) = (0u64, 0.0f64, 0usize);
    while !shutdown.is_cancelled() && !engine.is_finished() {
        let allowed = (started.elapsed().as_secs_f64() * options.rate as f64) as u64;
        if produced >= allowed {
            std::thread::sleep(Duration::from_millis(5));
            continue;
        }
        let (kind, topic) = inputs[(produced % inputs.len() as u64) as usize];
        bad_budget += options.bad_ratio;
        let payload = if bad_budget >= 1.0 {
            bad_budget -= 1.0;
            let class = BadInput::ALL[bad_index % BadInput::ALL.len()];
            bad_index += 1;
            generator.bad_payload(kind, class, config.pipeline.max_message_bytes)
        } else {
            encode_json(&generator.event(kind))
        };
        crate::demo::send(&producer, topic, &format!("k{produced}"), &payload)?;
        produced += 1;
    }
    let _ = producer.flush(Duration::from_secs(5));
    shutdown.cancel();
    let result = engine
        .join()
        .map_err(|_| anyhow::anyhow!("the engine thread panicked"))?;
    println!("threatflow demo: stopped after {produced} events");
    drop(runtime);
    drop(cluster);
    Ok(result?)
}
