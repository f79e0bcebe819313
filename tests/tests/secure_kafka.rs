//! Secure Kafka: the engine reaches a broker that demands TLS (a private CA, host-name
//! verification) and SASL (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER with OIDC) with options from its config,
//! its password from a secret file or the environment — and that password never appears in
//! `config check` output, the engine's logs (at debug level), or its HTTP endpoints. Wrong
//! credentials, an untrusted CA and a plaintext client are refused. The broker is Tansu
//! behind `tests/kafka_gateway/gateway.py` (see `threatflow_e2e::secure`).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use threatflow::events::SchemaKind;
use threatflow::generate::{encode_json, EventGenerator};
use threatflow_e2e::secure::{SecureBroker, USER};
use threatflow_e2e::{free_loopback_address, http_get, repository, EngineProcess, TestTopics};

const PASSWORD: &str = "Zq7-sasl-secret-9f3c";

fn engine_binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_threatflow-under-test"))
}

fn client(options: &[(String, String)]) -> ClientConfig {
    let mut config = ClientConfig::new();
    for (name, value) in options {
        config.set(name, value);
    }
    config
}

/// `[kafka.options]` for a SASL_SSL engine (no password: that comes from elsewhere).
fn security_options(ca: &Path, mechanism: &str) -> String {
    format!(
        "\n[kafka.options]\n\"security.protocol\" = \"SASL_SSL\"\n\"ssl.ca.location\" = \"{}\"\n\
         \"sasl.mechanisms\" = \"{mechanism}\"\n\"sasl.username\" = \"{USER}\"\n",
        ca.display()
    )
}

fn config_check(config: &Path, env: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut command = Command::new(engine_binary());
    // From the repository root, where the default artifact store (`./models`) is.
    command
        .args(["config", "check"])
        .arg(config)
        .current_dir(repository());
    for (name, value) in env {
        command.env(name, value);
    }
    let output = command.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code(), text)
}

fn cluster_with_topics(dir: &Path) -> (SecureBroker, TestTopics) {
    let broker = SecureBroker::start(dir, PASSWORD).unwrap();
    let topics = TestTopics::new(2);
    for topic in topics.names() {
        broker.create_topic(topic, 2).unwrap();
    }
    (broker, topics)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_scores_over_sasl_ssl_with_its_password_from_a_file_and_never_prints_it() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, topics) = cluster_with_topics(dir.path());
    let password_file = dir.path().join("kafka-password");
    std::fs::write(&password_file, format!("{PASSWORD}\n")).unwrap();
    let http = free_loopback_address().unwrap();
    let extra = format!(
        "{}\n[kafka.secret_files]\n\"sasl.password\" = \"{}\"\n",
        security_options(&broker.ca, "SCRAM-SHA-512"),
        password_file.display()
    );
    let config = dir.path().join("engine.toml");
    std::fs::write(
        &config,
        topics.engine_config(&broker.bootstrap, &dir.path().join("state"), &http, &extra),
    )
    .unwrap();

    let (status, checked) = config_check(&config, &[]);
    assert_eq!(status, Some(0), "{checked}");
    assert!(
        checked.contains("\"sasl.password\" = \"********\""),
        "{checked}"
    );
    assert!(
        !checked.contains(PASSWORD),
        "config check printed the password"
    );

    let log = dir.path().join("engine.log");
    let engine = EngineProcess::start_with_env(
        engine_binary(),
        &config,
        &log,
        &[("RUST_LOG", "debug,librdkafka=debug")],
    )
    .unwrap();

    // The test's own clients use PLAIN, so every SCRAM-SHA-512 login the gateway saw was the
    // engine's.
    let options = broker.client_options("PLAIN", PASSWORD);
    let producer: FutureProducer = client(&options).create().unwrap();
    let mut generator = EventGenerator::new(7);
    let events = 40;
    for index in 0..events {
        let payload = encode_json(&generator.event(SchemaKind::Flow));
        producer
            .send(
                FutureRecord::to(&topics.input)
                    .payload(&payload)
                    .key(&format!("k{index}")),
                Timeout::After(Duration::from_secs(30)),
            )
            .await
            .map_err(|(error, _)| error)
            .unwrap();
    }

    let consumer: BaseConsumer = client(&options)
        .set("group.id", "secure-reader")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut assignment = TopicPartitionList::new();
    for partition in 0..2 {
        assignment
            .add_partition_offset(&topics.output, partition, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&assignment).unwrap();
    let (mut scored, deadline) = (0, Instant::now() + Duration::from_secs(120));
    while scored < events && Instant::now() < deadline {
        if let Some(Ok(message)) = consumer.poll(Duration::from_millis(200)) {
            assert!(message.payload().is_some());
            scored += 1;
        }
    }
    let logs = std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(scored, events, "scored records over SASL_SSL\n{logs}");

    let mut endpoints = String::new();
    for path in ["/metrics", "/health", "/ready", "/models"] {
        let (_, body) = http_get(&http, path).unwrap();
        endpoints.push_str(&body);
    }
    assert!(endpoints.contains("threatflow_"), "metrics were served");
    assert!(
        !endpoints.contains(PASSWORD),
        "an HTTP endpoint showed the password"
    );

    engine.terminate(Duration::from_secs(30)).unwrap();
    let logs = std::fs::read_to_string(&log).unwrap();
    assert!(logs.len() > 1000, "the debug log was written:\n{logs}");
    assert!(!logs.contains(PASSWORD), "the engine logged the password");
    let gateway = std::fs::read_to_string(&broker.gateway_log).unwrap();
    assert!(
        gateway.contains(&format!("SCRAM-SHA-512 authenticated user {USER}")),
        "the engine logged in with SCRAM-SHA-512:\n{gateway}"
    );
    assert!(!gateway.contains("refused"), "{gateway}");
}

#[test]
fn config_check_accepts_each_mechanism_and_refuses_bad_credentials_ca_or_plaintext() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, topics) = cluster_with_topics(dir.path());
    let write = |name: &str, extra: &str| {
        let path = dir.path().join(name);
        std::fs::write(
            &path,
            topics.engine_config(
                &broker.bootstrap,
                &dir.path().join("state"),
                "127.0.0.1:0",
                extra,
            ),
        )
        .unwrap();
        path
    };
    let from_env = [("THREATFLOW_KAFKA__OPTIONS__SASL_PASSWORD", PASSWORD)];
    for mechanism in ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] {
        let config = write(mechanism, &security_options(&broker.ca, mechanism));
        let (status, text) = config_check(&config, &from_env);
        assert_eq!(status, Some(0), "{mechanism}: {text}");
        assert!(!text.contains(PASSWORD), "{mechanism}: password printed");
    }

    // OAUTHBEARER, OIDC client credentials: librdkafka fetches a token from the identity
    // provider with the client secret from the environment and presents it to the broker.
    let oidc = format!(
        "{}\"sasl.oauthbearer.method\" = \"oidc\"\n\"sasl.oauthbearer.client.id\" = \"{USER}\"\n\
         \"sasl.oauthbearer.token.endpoint.url\" = \"{}\"\n",
        security_options(&broker.ca, "OAUTHBEARER")
            .replace(&format!("\"sasl.username\" = \"{USER}\"\n"), ""),
        broker.token_url
    );
    let config = write("oidc", &oidc);
    let (status, text) = config_check(
        &config,
        &[(
            "THREATFLOW_KAFKA__OPTIONS__SASL_OAUTHBEARER_CLIENT_SECRET",
            PASSWORD,
        )],
    );
    assert_eq!(status, Some(0), "OAUTHBEARER/OIDC: {text}");
    assert!(
        text.contains("\"sasl.oauthbearer.client.secret\" = \"********\""),
        "{text}"
    );
    assert!(!text.contains(PASSWORD), "OIDC client secret printed");

    let wrong = "not-the-Password-77";
    let config = write("wrong", &security_options(&broker.ca, "SCRAM-SHA-512"));
    let (status, text) = config_check(
        &config,
        &[("THREATFLOW_KAFKA__OPTIONS__SASL_PASSWORD", wrong)],
    );
    assert_eq!(status, Some(1), "wrong password: {text}");
    assert!(text.contains("FAIL  brokers"), "{text}");
    assert!(!text.contains(wrong), "the wrong password was printed");

    let config = write("untrusted", &security_options(&broker.other_ca, "PLAIN"));
    let (status, text) = config_check(&config, &from_env);
    assert_eq!(status, Some(1), "untrusted CA: {text}");

    let config = write("plaintext", "");
    let (status, text) = config_check(&config, &[]);
    assert_eq!(status, Some(1), "plaintext client: {text}");

    let gateway = std::fs::read_to_string(&broker.gateway_log).unwrap();
    for mechanism in ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] {
        assert!(
            gateway.contains(&format!("{mechanism} authenticated user {USER}")),
            "{gateway}"
        );
    }
    assert!(gateway.contains("SCRAM-SHA-512 refused"), "{gateway}");
    assert!(
        gateway.contains(&format!("token endpoint issued a token to client {USER}"))
            && gateway.contains("OAUTHBEARER authenticated a bearer token"),
        "{gateway}"
    );
    assert!(!gateway.contains(PASSWORD) && !gateway.contains(wrong));
}
