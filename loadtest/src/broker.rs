//! The broker a load test runs on: librdkafka's mock cluster in this process (the default;
//! the engine processes reach it over TCP like any broker), a Tansu process started here, or
//! an external cluster. Each round gets its own topics, so rounds never read each other's
//! records.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use rdkafka::ClientConfig;
use threatflow::config::EngineConfig;
use threatflow::demo::{create_engine_topics, create_external_topics, DemoTopics};

/// Where the rounds run.
pub enum Broker {
    /// The embedded mock cluster.
    Embedded(MockCluster<'static, DefaultProducerContext>),
    /// A Tansu process (killed on drop) at this address.
    Tansu(Child, String),
    /// An external cluster.
    External(String),
}

impl Broker {
    /// Starts or names the broker the options ask for.
    pub fn open(brokers: Option<&str>, tansu: Option<&Path>) -> anyhow::Result<Self> {
        if let Some(brokers) = brokers {
            return Ok(Self::External(brokers.to_owned()));
        }
        let Some(binary) = tansu else {
            return Ok(Self::Embedded(MockCluster::new(1)?));
        };
        let address = crate::process::free_local_address()?;
        let url = format!("tcp://{address}");
        let child = Command::new(binary)
            .args(["broker", "--listener-url", &url])
            .args(["--advertised-listener-url", &url])
            .args(["--storage-engine", "memory://tansu/"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|error| anyhow::anyhow!("cannot start {}: {error}", binary.display()))?;
        let broker = Self::Tansu(child, address);
        broker.wait_until_up(Duration::from_secs(30))?;
        Ok(broker)
    }

    /// Bootstrap servers.
    pub fn bootstrap(&self) -> String {
        match self {
            Self::Embedded(cluster) => cluster.bootstrap_servers(),
            Self::Tansu(_, address) | Self::External(address) => address.clone(),
        }
    }

    /// What the JSON result calls it.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Embedded(_) => "embedded",
            Self::Tansu(..) => "tansu",
            Self::External(_) => "external",
        }
    }

    /// Creates a round's topics; on the mock cluster (no CreateTopics) also those the engine
    /// would create itself for `config`.
    pub fn create_topics(
        &self,
        topics: &DemoTopics,
        config: Option<&EngineConfig>,
    ) -> anyhow::Result<()> {
        match self {
            Self::Embedded(cluster) => {
                for name in topics.all() {
                    cluster.create_topic(name, threatflow::demo::DEMO_TOPIC_PARTITIONS, 1)?;
                }
                if let Some(config) = config {
                    create_engine_topics(cluster, config)?;
                }
                Ok(())
            }
            Self::Tansu(..) | Self::External(_) => {
                create_external_topics(&self.bootstrap(), topics)
            }
        }
    }

    fn wait_until_up(&self, timeout: Duration) -> anyhow::Result<()> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", self.bootstrap())
            .create()?;
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if consumer
                .fetch_metadata(None, Duration::from_secs(1))
                .is_ok()
            {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        anyhow::bail!("broker at {} did not come up", self.bootstrap())
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Self::Tansu(child, _) = self {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
