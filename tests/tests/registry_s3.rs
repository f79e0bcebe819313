//! The artifact store on an S3-compatible server (PyPI `moto[server]`, started on loopback):
//! `models push` uploads a version into a bucket, an engine boots on it (download into its
//! cache, every sha256 verified), and a version whose stored bytes changed is refused.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use threatflow_e2e::{
    free_loopback_address, http_get, repository, succeed, Broker, EngineProcess, TestTopics,
};

/// A moto S3 server on a free loopback port, stopped on drop.
struct S3Server {
    child: Child,
    address: String,
}

impl S3Server {
    fn start() -> anyhow::Result<Self> {
        let address = free_loopback_address()?;
        let (host, port) = address.split_once(':').unwrap();
        let child =
            Command::new(std::env::var("MOTO_SERVER").unwrap_or_else(|_| "moto_server".into()))
                .args(["-H", host, "-p", port])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|error| {
                    anyhow::anyhow!(
                        "cannot start moto_server (scripts/setup.sh installs it): {error}"
                    )
                })?;
        let server = Self { child, address };
        let deadline = Instant::now() + Duration::from_secs(30);
        while s3_request(&server.address, "GET", "/", None).is_err() {
            anyhow::ensure!(Instant::now() < deadline, "moto_server did not come up");
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok(server)
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A plain unsigned HTTP request to the S3 server (moto creates buckets without a
/// signature): status code.
fn s3_request(address: &str, method: &str, path: &str, body: Option<&[u8]>) -> anyhow::Result<u16> {
    let mut stream = std::net::TcpStream::connect(address)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let body = body.unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )?;
    stream.write_all(body)?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0))
}

/// A signed S3 client on the bucket (what another tool with credentials would do).
fn bucket(address: &str) -> object_store::aws::AmazonS3 {
    object_store::aws::AmazonS3Builder::new()
        .with_bucket_name("threatflow-models")
        .with_endpoint(format!("http://{address}"))
        .with_allow_http(true)
        .with_region("us-east-1")
        .with_access_key_id("test")
        .with_secret_access_key("test")
        .build()
        .unwrap()
}

fn models(config: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_threatflow-under-test"))
        .arg("models")
        .args(args)
        .args(["--config", &config.display().to_string()])
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_are_pushed_pulled_and_verified_through_an_s3_compatible_store(
) -> anyhow::Result<()> {
    let s3 = S3Server::start()?;
    assert_eq!(
        s3_request(&s3.address, "PUT", "/threatflow-models", None)?,
        200
    );
    let broker = Broker::start()?;
    let topics = TestTopics::create(&broker, 2)?;
    let work = tempfile::tempdir()?;
    let http = free_loopback_address()?;
    // No local model: the engine can only get one from the bucket.
    let empty_models = work.path().join("no-local-models");
    std::fs::create_dir_all(&empty_models)?;
    let config = topics.operator_config(
        &broker.bootstrap,
        &work.path().join("state"),
        &http,
        ("flow", "flow"),
        &empty_models,
        "",
    ) + &format!(
        "\n[registry]\nstore = \"s3://threatflow-models/prod\"\n[registry.store_options]\n\
             aws_endpoint = \"http://{}\"\naws_allow_http = \"true\"\naws_region = \"us-east-1\"\n\
             aws_access_key_id = \"test\"\naws_secret_access_key = \"test\"\n",
        s3.address
    );
    let config_path = work.path().join("engine.toml");
    std::fs::write(&config_path, config)?;

    let shipped: PathBuf = repository().join("models/flow/v1");
    succeed(models(
        &config_path,
        &["push", &shipped.display().to_string(), "--as", "champion"],
    ));
    let listed = succeed(models(&config_path, &["list", "--json"]));
    let listing: serde_json::Value = serde_json::from_str(listed.lines().last().unwrap())?;
    assert_eq!(
        listing["flow"]["versions"],
        serde_json::json!(["v1"]),
        "{listed}"
    );
    assert_eq!(listing["flow"]["champion"], "v1");
    // Stored under the prefix, as the manifest's files.
    use object_store::ObjectStoreExt;
    let signed = bucket(&s3.address);
    let stored = signed
        .get(&"prod/flow/v1/manifest.json".into())
        .await?
        .bytes()
        .await?;
    assert_eq!(
        stored.as_ref(),
        std::fs::read(shipped.join("manifest.json"))?.as_slice()
    );

    // Pull: the engine boots on the champion from the bucket.
    let _engine = EngineProcess::start(
        Path::new(env!("CARGO_BIN_EXE_threatflow-under-test")),
        &config_path,
        &work.path().join("engine.log"),
    )?;
    let deadline = Instant::now() + Duration::from_secs(60);
    let description = loop {
        if let Ok((200, body)) = http_get(&http, "/models") {
            let models: serde_json::Value = serde_json::from_str(&body)?;
            if models[&topics.input]["model_version"] == "v1" {
                break models[&topics.input].clone();
            }
        }
        assert!(
            Instant::now() < deadline,
            "engine did not boot on the stored champion\n{}",
            std::fs::read_to_string(work.path().join("engine.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let directory = description["directory"].as_str().unwrap();
    assert!(directory.contains("model-cache"), "{description}");

    // Verify: a copy whose stored model lost one byte's worth of integrity is refused.
    let v2 = work.path().join("build/v2");
    std::fs::create_dir_all(&v2)?;
    for entry in std::fs::read_dir(&shipped)? {
        let path = entry?.path();
        std::fs::copy(&path, v2.join(path.file_name().unwrap()))?;
    }
    let manifest_path = v2.join("manifest.json");
    let mut manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(&manifest_path)?)?;
    manifest["version"] = "v2".into();
    std::fs::write(&manifest_path, serde_json::to_vec_pretty(&manifest)?)?;
    succeed(models(
        &config_path,
        &["push", &v2.display().to_string(), "--as", "none"],
    ));
    let mut tampered = std::fs::read(shipped.join("category.json"))?;
    tampered[64] ^= 0x01;
    signed
        .put(&"prod/flow/v2/category.json".into(), tampered.into())
        .await?;
    let refused = models(&config_path, &["promote", "flow", "v2"]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("category.json") && stderr.contains("differs from the manifest"),
        "{stderr}"
    );
    let shown = succeed(models(&config_path, &["show", "flow", "--json"]));
    let show: serde_json::Value = serde_json::from_str(shown.lines().last().unwrap())?;
    assert_eq!(show["champion"], "v1");
    Ok(())
}
