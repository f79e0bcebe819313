//! Harness of the end-to-end tests: a real Kafka-protocol broker process (Tansu) on a free
//! loopback port, the engine as a real process that can be SIGKILLed or SIGTERMed, a
//! producer that records where each input landed, and a collector that reads every output
//! topic from the beginning and indexes outputs by their input coordinates.
//!
//! Every test uses fresh topic and group names (Tansu cannot re-join a group that every
//! member has left; see `../shared/OFFLINE.md`), so tests never see each other's data.

pub mod all_operators;
pub mod records;
pub mod secure;

use std::collections::{BTreeMap, HashMap};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use threatflow::dead_letter::DeadLetter;
use threatflow::scored::Scored;

/// Environment variable naming the Tansu binary (`.ci/run` and `scripts/setup.sh` install
/// one under `.tools/bin/`).
pub const TANSU_BIN_ENV: &str = "TANSU_BIN";

/// Where the Tansu binary is: `$TANSU_BIN`, else `<repo>/.tools/bin/tansu`, else `tansu` on
/// the PATH.
pub fn tansu_binary() -> PathBuf {
    if let Some(path) = std::env::var_os(TANSU_BIN_ENV) {
        return PathBuf::from(path);
    }
    let installed = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.tools/bin/tansu");
    if installed.exists() {
        return installed;
    }
    PathBuf::from("tansu")
}

/// A name no other test run uses.
pub fn unique_name(prefix: &str) -> String {
    format!("{prefix}-{:016x}", rand::random::<u64>())
}

pub(crate) fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// A Tansu broker process with in-memory storage; killed on drop.
pub struct Broker {
    child: Child,
    /// `127.0.0.1:<port>`.
    pub bootstrap: String,
}

impl Broker {
    /// Starts a broker on a free port and waits until it answers metadata requests.
    pub fn start() -> anyhow::Result<Self> {
        let binary = tansu_binary();
        let port = free_port()?;
        let url = format!("tcp://127.0.0.1:{port}");
        let child = Command::new(&binary)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "memory://tansu/"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| {
                format!(
                    "cannot start Tansu at {} (run scripts/setup.sh)",
                    binary.display()
                )
            })?;
        let broker = Self {
            child,
            bootstrap: format!("127.0.0.1:{port}"),
        };
        broker.wait_until_up(Duration::from_secs(30))?;
        Ok(broker)
    }

    fn wait_until_up(&self, timeout: Duration) -> anyhow::Result<()> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
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
        bail!("broker at {} did not come up", self.bootstrap)
    }

    /// Creates a topic with the broker's own CLI.
    pub fn create_topic(&self, name: &str, partitions: u32) -> anyhow::Result<()> {
        let status = tansu_create_topic(&self.bootstrap, name, partitions)?;
        if !status.success() {
            bail!("tansu topic create {name} failed: {status}");
        }
        Ok(())
    }
}

/// Runs `tansu topic create` against the Tansu broker at `address` (`host:port`).
pub(crate) fn tansu_create_topic(
    address: &str,
    name: &str,
    partitions: u32,
) -> anyhow::Result<std::process::ExitStatus> {
    Ok(Command::new(tansu_binary())
        .args(["topic", "create", "--broker", &format!("tcp://{address}")])
        .args(["--partitions", &partitions.to_string(), name])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()?)
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The topics and group of one test.
#[derive(Debug, Clone)]
pub struct TestTopics {
    /// Input topic (flows schema).
    pub input: String,
    /// Scored output topic.
    pub output: String,
    /// Dead-letter topic.
    pub dead_letter: String,
    /// Consumer group of the engine.
    pub group: String,
    /// Partitions of every topic.
    pub partitions: u32,
}

impl TestTopics {
    /// Fresh names; the caller creates the topics.
    pub fn new(partitions: u32) -> Self {
        Self {
            input: unique_name("flows"),
            output: unique_name("scored"),
            dead_letter: unique_name("dlq"),
            group: unique_name("group"),
            partitions,
        }
    }

    /// Fresh names, topics created on `broker`.
    pub fn create(broker: &Broker, partitions: u32) -> anyhow::Result<Self> {
        let topics = Self::new(partitions);
        for topic in topics.names() {
            broker.create_topic(topic, partitions)?;
        }
        Ok(topics)
    }

    /// Input, output and dead-letter topic names.
    pub fn names(&self) -> [&str; 3] {
        [&self.input, &self.output, &self.dead_letter]
    }

    /// [`Self::engine_config`] with the input bound to `(schema, operator)` and models from
    /// `model_dir`.
    pub fn operator_config(
        &self,
        bootstrap: &str,
        state_dir: &Path,
        http_bind: &str,
        (schema, operator): (&str, &str),
        model_dir: &Path,
        extra: &str,
    ) -> String {
        self.engine_config(bootstrap, state_dir, http_bind, extra)
            .replace("schema = \"flow\"", &format!("schema = \"{schema}\""))
            .replace(
                "operator = \"passthrough\"",
                &format!("operator = \"{operator}\""),
            )
            .replace(
                "[storage]\n",
                &format!("[storage]\nmodel_dir = \"{}\"\n", model_dir.display()),
            )
    }

    /// An engine config for these topics, with the passthrough operator and short group
    /// timeouts so a killed member is noticed quickly. `extra` is appended verbatim.
    pub fn engine_config(
        &self,
        bootstrap: &str,
        state_dir: &Path,
        http_bind: &str,
        extra: &str,
    ) -> String {
        format!(
            r#"
[kafka]
brokers = "{brokers}"
group_id = "{group}"

[kafka.consumer_options]
"session.timeout.ms" = "6000"
"heartbeat.interval.ms" = "1000"

[[bindings]]
topic = "{input}"
schema = "flow"
operator = "passthrough"
output_topic = "{output}"

[output]
dead_letter_topic = "{dead_letter}"

[storage]
state_dir = "{state}"

[http]
bind = "{http_bind}"

[pipeline]
linger_ms = 10
shutdown_grace_ms = 15000
{extra}
"#,
            brokers = bootstrap,
            group = self.group,
            input = self.input,
            output = self.output,
            dead_letter = self.dead_letter,
            state = state_dir.display(),
        )
    }
}

/// The engine as a child process.
pub struct EngineProcess {
    child: Child,
}

impl EngineProcess {
    /// Starts `<binary> run --config <config>`; logs go to `log_path`. Integration tests pass
    /// `env!("CARGO_BIN_EXE_threatflow-under-test")` (only they see that variable).
    pub fn start(binary: &Path, config: &Path, log_path: &Path) -> anyhow::Result<Self> {
        Self::start_with_env(binary, config, log_path, &[])
    }

    /// [`Self::start`] with extra environment variables (fault injection, overrides).
    pub fn start_with_env(
        binary: &Path,
        config: &Path,
        log_path: &Path,
        env: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let log = std::fs::File::create(log_path)?;
        let mut command = Command::new(binary);
        command
            .args(["run", "--config"])
            .arg(config)
            .env("RUST_LOG", "info,librdkafka=warn")
            .stdout(Stdio::null())
            .stderr(log);
        for (name, value) in env {
            command.env(name, value);
        }
        Ok(Self {
            child: command.spawn()?,
        })
    }

    /// The exit status if the engine has exited by itself within `timeout`.
    pub fn wait_exit(
        &mut self,
        timeout: Duration,
    ) -> anyhow::Result<Option<std::process::ExitStatus>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(Some(status));
            }
            if Instant::now() > deadline {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGKILL: no drain, no flush, no commit.
    pub fn kill_hard(mut self) -> anyhow::Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }

    /// SIGTERM, then waits for the exit status (up to `timeout`).
    pub fn terminate(mut self, timeout: Duration) -> anyhow::Result<std::process::ExitStatus> {
        let pid = i32::try_from(self.child.id())?;
        // SAFETY: plain libc call on our own child's pid.
        let sent = unsafe { libc::kill(pid, libc::SIGTERM) };
        if sent != 0 {
            bail!("kill(SIGTERM) failed");
        }
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                bail!("engine did not exit within {timeout:?} of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for EngineProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An engine process running one operator on a test's topics, with the shipped models, its
/// own work directory (config, state, log) and HTTP address. Dropping it kills the process
/// first, then removes the directory (fields drop in declaration order).
pub struct OperatorEngine {
    /// Held for its `Drop`, which kills the engine.
    _process: EngineProcess,
    dir: tempfile::TempDir,
    /// The engine's HTTP address (`/models`, `/metrics`).
    pub http: String,
}

impl OperatorEngine {
    /// Starts `binary` (integration tests pass `env!("CARGO_BIN_EXE_threatflow-under-test")`)
    /// with `topics.operator_config` for `(schema, operator)`, `repository()/models` and
    /// `extra` config text.
    pub fn start(
        binary: &Path,
        broker: &Broker,
        topics: &TestTopics,
        schema_and_operator: (&str, &str),
        extra: &str,
    ) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let http = free_loopback_address()?;
        let config = topics.operator_config(
            &broker.bootstrap,
            &dir.path().join("state"),
            &http,
            schema_and_operator,
            &repository().join("models"),
            extra,
        );
        let config_path = dir.path().join("engine.toml");
        std::fs::write(&config_path, config)?;
        let process = EngineProcess::start(binary, &config_path, &dir.path().join("engine.log"))?;
        Ok(Self {
            _process: process,
            dir,
            http,
        })
    }

    /// The engine's log so far (for assertion messages).
    pub fn logs(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("engine.log")).unwrap_or_default()
    }

    /// The engine's config file.
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("engine.toml")
    }
}

/// Where an input landed.
pub type Coordinates = (i32, i64);

/// Produces `payloads` to `topic` (keys `k<i>`) and returns where each landed, in order.
pub async fn produce(
    bootstrap: &str,
    topic: &str,
    payloads: &[Vec<u8>],
) -> anyhow::Result<Vec<Coordinates>> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "5")
        .create()?;
    let mut landed = Vec::with_capacity(payloads.len());
    for chunk in payloads.chunks(500).enumerate() {
        let (chunk_index, chunk) = chunk;
        let sends = chunk.iter().enumerate().map(|(index, payload)| {
            let key = format!("k{}", chunk_index * 500 + index);
            let producer = &producer;
            async move {
                producer
                    .send(
                        FutureRecord::to(topic).payload(payload).key(&key),
                        Timeout::Never,
                    )
                    .await
                    .map(|delivery| (delivery.partition, delivery.offset))
                    .map_err(|(error, _)| anyhow::anyhow!("produce failed: {error}"))
            }
        });
        for result in futures::future::join_all(sends).await {
            landed.push(result?);
        }
    }
    Ok(landed)
}

/// Reads the scored and dead-letter topics from the beginning, indexing by input offset.
pub struct OutputCollector {
    consumer: BaseConsumer,
    input_topic: String,
    dead_letter_topic: String,
    /// Scored outputs per input coordinate (count > 1 means re-delivery).
    pub scored: HashMap<Coordinates, u32>,
    /// Dead-letter reason codes per input coordinate.
    pub dead_letters: HashMap<Coordinates, Vec<String>>,
}

impl OutputCollector {
    /// Assigns every partition of the output topics from the beginning.
    pub fn new(bootstrap: &str, topics: &TestTopics) -> anyhow::Result<Self> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("group.id", unique_name("collector"))
            .set("enable.auto.commit", "false")
            .create()?;
        let mut assignment = TopicPartitionList::new();
        for topic in [&topics.output, &topics.dead_letter] {
            for partition in 0..topics.partitions {
                assignment.add_partition_offset(
                    topic,
                    i32::try_from(partition)?,
                    Offset::Beginning,
                )?;
            }
        }
        consumer.assign(&assignment)?;
        Ok(Self {
            consumer,
            input_topic: topics.input.clone(),
            dead_letter_topic: topics.dead_letter.clone(),
            scored: HashMap::new(),
            dead_letters: HashMap::new(),
        })
    }

    /// Inputs with at least one output.
    pub fn accounted(&self) -> usize {
        let mut inputs: std::collections::HashSet<&Coordinates> = self.scored.keys().collect();
        inputs.extend(self.dead_letters.keys());
        inputs.len()
    }

    /// Output records beyond one per input.
    pub fn duplicates(&self) -> u64 {
        let scored: u64 = self
            .scored
            .values()
            .map(|&count| u64::from(count.saturating_sub(1)))
            .sum();
        let dead: u64 = self
            .dead_letters
            .values()
            .map(|reasons| reasons.len().saturating_sub(1) as u64)
            .sum();
        scored + dead
    }

    /// Reads until `expected` inputs are accounted for or `timeout` passes.
    pub fn collect_until(&mut self, expected: usize, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        while self.accounted() < expected && Instant::now() < deadline {
            self.poll_for(Duration::from_millis(200))?;
        }
        Ok(())
    }

    /// Reads whatever arrives within `duration`.
    pub fn poll_for(&mut self, duration: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + duration;
        while Instant::now() < deadline {
            let Some(message) = self.consumer.poll(Duration::from_millis(50)) else {
                continue;
            };
            // Transport errors are transient (a broker outage in the fault tests); librdkafka
            // reconnects and the next poll carries on.
            let Ok(message) = message else {
                continue;
            };
            let payload = message.payload().unwrap_or_default();
            if message.topic() == self.dead_letter_topic {
                let dead: DeadLetter = serde_json::from_slice(payload)?;
                if dead.source.topic != self.input_topic {
                    bail!("dead letter from unexpected topic {}", dead.source.topic);
                }
                self.dead_letters
                    .entry((dead.source.partition, dead.source.offset))
                    .or_default()
                    .push(dead.reason.code().to_owned());
            } else {
                let scored: Scored = serde_json::from_slice(payload)?;
                if scored.source.topic != self.input_topic {
                    bail!("scored event from unexpected topic {}", scored.source.topic);
                }
                *self
                    .scored
                    .entry((scored.source.partition, scored.source.offset))
                    .or_default() += 1;
            }
        }
        Ok(())
    }

    /// Inputs in `landed` without any output.
    pub fn missing(&self, landed: &[Coordinates]) -> Vec<Coordinates> {
        landed
            .iter()
            .filter(|coordinates| {
                !self.scored.contains_key(coordinates)
                    && !self.dead_letters.contains_key(coordinates)
            })
            .copied()
            .collect()
    }
}

/// Counts by key, for readable assertion messages.
pub fn histogram<T: Ord + Clone>(items: impl IntoIterator<Item = T>) -> BTreeMap<T, usize> {
    let mut counts = BTreeMap::new();
    for item in items {
        *counts.entry(item).or_default() += 1;
    }
    counts
}

/// A free loopback address for the engine's HTTP endpoint.
pub fn free_loopback_address() -> anyhow::Result<String> {
    Ok(format!("127.0.0.1:{}", free_port()?))
}

/// A minimal HTTP/1.1 GET (no client library needed): returns status code and body.
pub fn http_get(address: &str, path: &str) -> anyhow::Result<(u16, String)> {
    http_request(address, "GET", path, None, None)
}

/// A minimal HTTP/1.1 POST of a JSON body: returns status code and body.
pub fn http_post_json(address: &str, path: &str, body: &str) -> anyhow::Result<(u16, String)> {
    http_request(address, "POST", path, Some(body), None)
}

/// [`http_post_json`] with `Authorization: Bearer <token>`.
pub fn http_post_json_as(
    address: &str,
    path: &str,
    body: &str,
    token: &str,
) -> anyhow::Result<(u16, String)> {
    http_request(address, "POST", path, Some(body), Some(token))
}

fn http_request(
    address: &str,
    method: &str,
    path: &str,
    json_body: Option<&str>,
    bearer: Option<&str>,
) -> anyhow::Result<(u16, String)> {
    let authorization = bearer.map(|token| format!("Bearer {token}"));
    let headers: Vec<(&str, &str)> = authorization
        .as_deref()
        .map(|value| ("Authorization", value))
        .into_iter()
        .collect();
    let answer = http_call(
        address,
        method,
        path,
        &headers,
        json_body.map(str::as_bytes),
    )?;
    Ok((answer.status, answer.body))
}

/// An HTTP answer: status, headers (names lower-cased) and body.
#[derive(Debug, Clone)]
pub struct HttpAnswer {
    /// Status code.
    pub status: u16,
    /// Header lines, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// Body text.
    pub body: String,
}

impl HttpAnswer {
    /// The value of header `name` (lower-case), if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(header, _)| header == name)
            .map(|(_, value)| value.as_str())
    }

    /// The body as JSON (panics with the body when it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|error| panic!("{error}: {} {}", self.status, self.body))
    }
}

/// A minimal HTTP/1.1 exchange (no client library needed): `body`, when given, is sent as
/// `application/json` with its length.
pub fn http_call(
    address: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> anyhow::Result<HttpAnswer> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address)?;
    // A model swap answers after loading and warming the new version.
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut request =
        format!("{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(body) = body {
        request.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes())?;
    if let Some(body) = body {
        // A server may answer (413) and close before reading a large body whole.
        let _ = stream.write_all(body);
    }
    let mut response = Vec::new();
    if let Err(error) = stream.read_to_end(&mut response) {
        if response.is_empty() {
            return Err(error.into());
        }
    }
    let split = response
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .unwrap_or(response.len());
    let head = String::from_utf8_lossy(&response[..split]).into_owned();
    let body = response.get(split + 4..).unwrap_or_default();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .context("malformed HTTP status line")?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_lowercase(), value.trim().to_owned()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(name, value)| name == "transfer-encoding" && value.contains("chunked"));
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_vec()
    };
    Ok(HttpAnswer {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// The payload of a chunked HTTP body.
fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(line_end) = body.windows(2).position(|window| window == b"\r\n") {
        let size = std::str::from_utf8(&body[..line_end])
            .ok()
            .and_then(|size| usize::from_str_radix(size.trim(), 16).ok());
        let data = &body[line_end + 2..];
        match size {
            Some(size) if size > 0 && data.len() >= size => {
                out.extend_from_slice(&data[..size]);
                body = data[size..].strip_prefix(b"\r\n").unwrap_or(&data[size..]);
            }
            _ => break,
        }
    }
    out
}

/// Sum over partitions of the offsets `group` has committed on `topic` (0 for none), read
/// with an OffsetFetch that does not join the group.
pub fn committed_total(
    bootstrap: &str,
    group: &str,
    topic: &str,
    partitions: u32,
) -> anyhow::Result<i64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()?;
    let mut list = TopicPartitionList::new();
    for partition in 0..partitions {
        list.add_partition(topic, i32::try_from(partition)?);
    }
    let committed = consumer.committed_offsets(list, Duration::from_secs(10))?;
    Ok(committed
        .elements()
        .iter()
        .map(|element| match element.offset() {
            Offset::Offset(offset) => offset,
            _ => 0,
        })
        .sum())
}

/// Reads scored records (JSON) of `topics` from the beginning until `enough` says stop or `timeout` passes.
pub fn consume_scored(
    bootstrap: &str,
    topics: &[&str],
    partitions: u32,
    timeout: Duration,
    enough: impl Fn(&HashMap<String, Vec<Scored>>) -> bool,
) -> HashMap<String, Vec<Scored>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", unique_name("reader"))
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut assignment = TopicPartitionList::new();
    for topic in topics {
        for partition in 0..partitions {
            assignment
                .add_partition_offset(topic, partition as i32, Offset::Beginning)
                .unwrap();
        }
    }
    consumer.assign(&assignment).unwrap();
    let mut records: HashMap<String, Vec<Scored>> = HashMap::new();
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline && !enough(&records) {
        if let Some(Ok(message)) = consumer.poll(Duration::from_millis(100)) {
            let scored: Scored = serde_json::from_slice(message.payload().unwrap_or_default())
                .expect("scored record");
            records
                .entry(message.topic().to_owned())
                .or_default()
                .push(scored);
        }
    }
    records
}

/// The repository root (models, schemas, configs), for tests that run the CLI on its files.
pub fn repository() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// Stdout of a command that must have succeeded; otherwise fails the test with both streams.
pub fn succeed(output: std::process::Output) -> String {
    assert!(
        output.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}
