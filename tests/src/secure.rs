//! A broker that demands TLS and SASL, for the secure-Kafka tests: Tansu behind the
//! TLS/SASL-terminating gateway of `tests/kafka_gateway/gateway.py`, with a throw-away
//! certificate authority, an OIDC token endpoint made by `openssl` (server certificate for IP 127.0.0.1, so
//! librdkafka's host-name verification runs for real). Tansu advertises the gateway's
//! address, so every connection a client makes after bootstrap comes back through it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::records::test_tool;
use crate::{free_port, repository, tansu_binary, tansu_create_topic};

/// The SASL user the gateway accepts.
pub const USER: &str = "threatflow-svc";

/// A TLS + SASL cluster; every process is killed on drop.
pub struct SecureBroker {
    children: Vec<Child>,
    /// The gateway, `127.0.0.1:<port>`: what clients bootstrap from.
    pub bootstrap: String,
    /// Tansu's own plaintext port, for topic creation only.
    plain: String,
    /// The CA certificate clients must trust.
    pub ca: PathBuf,
    /// A second CA nobody signed the server with (for the "untrusted" case).
    pub other_ca: PathBuf,
    /// The file the gateway reads the password from.
    pub password_file: PathBuf,
    /// The gateway's log (users and outcomes, never passwords).
    pub gateway_log: PathBuf,
    /// The OIDC client-credentials token endpoint (client [`USER`], secret = the password).
    pub token_url: String,
}

fn openssl(dir: &Path, args: &[&str]) -> anyhow::Result<()> {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .context("openssl missing (scripts/setup.sh installs it)")?;
    if !output.status.success() {
        bail!(
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

/// Makes `ca.pem`, `other-ca.pem` and `server.pem` / `server.key` (SAN IP 127.0.0.1) in `dir`.
fn make_certificates(dir: &Path) -> anyhow::Result<()> {
    for (key, cert, name) in [
        ("ca.key", "ca.pem", "threatflow-test-ca"),
        ("other-ca.key", "other-ca.pem", "someone-else-ca"),
    ] {
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-keyout",
                key,
                "-out",
                cert,
                "-subj",
                &format!("/CN={name}"),
            ],
        )?;
    }
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    )?;
    std::fs::write(
        dir.join("san.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )?;
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "san.cnf",
        ],
    )
}

impl SecureBroker {
    /// Starts Tansu and the gateway (TLS with a fresh CA, SASL user [`USER`] with
    /// `password`) in `dir`, and waits until both answer.
    pub fn start(dir: &Path, password: &str) -> anyhow::Result<Self> {
        make_certificates(dir)?;
        let password_file = dir.join("gateway-password");
        std::fs::write(&password_file, password)?;
        let (tansu_port, gateway_port, oidc_port) = (free_port()?, free_port()?, free_port()?);
        let plain = format!("127.0.0.1:{tansu_port}");
        let bootstrap = format!("127.0.0.1:{gateway_port}");
        let mut children = vec![Command::new(tansu_binary())
            .args(["broker", "--listener-url", &format!("tcp://{plain}")])
            .args(["--advertised-listener-url", &format!("tcp://{bootstrap}")])
            .args(["--storage-engine", "memory://tansu/"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start Tansu (run scripts/setup.sh)")?];
        let (ready, gateway_log) = (dir.join("gateway-ready"), dir.join("gateway.log"));
        children.push(
            Command::new(test_tool("APITEST_PYTHON", "python"))
                .arg(repository().join("tests/kafka_gateway/gateway.py"))
                .args(["--listen", &gateway_port.to_string(), "--upstream", &plain])
                .arg("--ready")
                .arg(&ready)
                .args(["--user", USER, "--password-file"])
                .arg(&password_file)
                .arg("--cert")
                .arg(dir.join("server.pem"))
                .arg("--key")
                .arg(dir.join("server.key"))
                .args(["--oidc-port", &oidc_port.to_string()])
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&gateway_log)?)
                .spawn()?,
        );
        let broker = Self {
            children,
            bootstrap,
            plain,
            ca: dir.join("ca.pem"),
            other_ca: dir.join("other-ca.pem"),
            password_file,
            gateway_log,
            token_url: format!("http://127.0.0.1:{oidc_port}/token"),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !ready.exists() || std::net::TcpStream::connect(&broker.plain).is_err() {
            if Instant::now() > deadline {
                bail!("the gateway or Tansu did not start");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(broker)
    }

    /// Creates a topic through Tansu's plaintext port (its CLI speaks no TLS or SASL).
    pub fn create_topic(&self, name: &str, partitions: u32) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let status = tansu_create_topic(&self.plain, name, partitions)?;
            if status.success() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("tansu topic create {name} failed: {status}");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// librdkafka options of a SASL_SSL client of this cluster with `mechanism`.
    pub fn client_options(&self, mechanism: &str, password: &str) -> Vec<(String, String)> {
        [
            ("bootstrap.servers", self.bootstrap.as_str()),
            ("security.protocol", "SASL_SSL"),
            ("ssl.ca.location", self.ca.to_str().unwrap_or_default()),
            ("sasl.mechanisms", mechanism),
            ("sasl.username", USER),
            ("sasl.password", password),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect()
    }
}

impl Drop for SecureBroker {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
