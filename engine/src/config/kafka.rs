//! The `[kafka]` section: brokers, group, librdkafka options, and the secrets those options
//! need (SASL passwords, OAUTHBEARER client secrets, TLS key passwords).
//!
//! Secrets reach the engine three ways, never needing to sit in the config file:
//! - an environment override, `THREATFLOW_KAFKA__OPTIONS__SASL_PASSWORD` (a Kubernetes
//!   `secretKeyRef`);
//! - a file, `[kafka.secret_files] "sasl.password" = "/var/run/secrets/kafka/password"` (a
//!   mounted Secret): read once at load, trailing newline dropped, and set as that option;
//! - librdkafka's own file options (`ssl.key.location`, `ssl.ca.location`), which it reads.
//!
//! Guarantee: [`KafkaConfig::masked`] hides every option whose name looks secret
//! ([`is_secret_option`]) and every option that came from a secret file, whatever its name;
//! a secret file that cannot be read is a config error that names the file, never its
//! content.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Substrings of option names whose values are masked when the config is printed. Names
/// ending in `token` are masked too (object-store session tokens), but not
/// `sasl.oauthbearer.token.endpoint.url`, which operators need to see.
const SECRET_MARKERS: [&str; 4] = ["password", "secret", "key.pem", "oauthbearer.config"];

/// What a masked value prints as.
pub const MASK: &str = "********";

/// Whether an option (librdkafka property or store option) holds a secret by its name.
pub fn is_secret_option(name: &str) -> bool {
    SECRET_MARKERS.iter().any(|marker| name.contains(marker)) || name.ends_with("token")
}

/// Replaces the values of secret-looking options with [`MASK`].
pub fn mask_secret_options(options: &mut BTreeMap<String, String>) {
    for (name, value) in options.iter_mut() {
        if is_secret_option(name) {
            *value = MASK.to_owned();
        }
    }
}

/// Kafka connection and client options. Its `Debug` prints the masked copy, so a secret
/// cannot reach a log line or panic message through `{:?}`.
#[derive(Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// Bootstrap servers, comma-separated `host:port` list.
    pub brokers: String,
    /// Consumer group id; all pods of one deployment share it.
    pub group_id: String,
    /// librdkafka properties given to both consumer and producer (TLS, SASL, ...).
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    /// librdkafka properties for the consumer only (override `options`).
    #[serde(default)]
    pub consumer_options: BTreeMap<String, String>,
    /// librdkafka properties for the producer only (override `options`).
    #[serde(default)]
    pub producer_options: BTreeMap<String, String>,
    /// librdkafka properties read from files (a mounted Secret): property name → path, e.g.
    /// `"sasl.password" = "/var/run/secrets/kafka/password"`. Read at load, trailing
    /// newline dropped, set as a client option for consumer and producer, and always masked
    /// in printed config. A property may not be both here and in `options`.
    #[serde(default)]
    pub secret_files: BTreeMap<String, PathBuf>,
    /// Static group membership (`group.instance.id`, KIP-345): a member that restarts with
    /// the same id gets its partitions back without a rebalance. Must be unique per member
    /// and stable across its restarts. Empty (default): the `POD_NAME` environment variable
    /// if set (the Helm chart sets it from the pod name), else dynamic membership.
    #[serde(default)]
    pub group_instance_id: String,
}

impl std::fmt::Debug for KafkaConfig {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let masked = self.masked();
        formatter
            .debug_struct("KafkaConfig")
            .field("brokers", &masked.brokers)
            .field("group_id", &masked.group_id)
            .field("options", &masked.options)
            .field("consumer_options", &masked.consumer_options)
            .field("producer_options", &masked.producer_options)
            .field("secret_files", &masked.secret_files)
            .field("group_instance_id", &masked.group_instance_id)
            .finish()
    }
}

impl KafkaConfig {
    /// The static member id in use: `group_instance_id`, else `$POD_NAME`, else none.
    pub fn effective_group_instance_id(&self) -> Option<String> {
        if !self.group_instance_id.trim().is_empty() {
            return Some(self.group_instance_id.trim().to_owned());
        }
        std::env::var("POD_NAME")
            .ok()
            .map(|name| name.trim().to_owned())
            .filter(|name| !name.is_empty())
    }

    /// Reads `secret_files` into `options`. Problems name the property and the path (and
    /// the OS error), never the file's content.
    pub fn load_secret_files(&mut self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        for (property, path) in &self.secret_files {
            if self.options.contains_key(property) {
                problems.push(format!(
                    "kafka.secret_files.\"{property}\": also set in kafka.options; keep one"
                ));
                continue;
            }
            match std::fs::read_to_string(path) {
                Ok(content) => {
                    let value = content.trim_end_matches(['\n', '\r']).to_owned();
                    if value.is_empty() {
                        problems.push(format!(
                            "kafka.secret_files.\"{property}\": {} is empty",
                            path.display()
                        ));
                    } else {
                        self.options.insert(property.clone(), value);
                    }
                }
                Err(error) => problems.push(format!(
                    "kafka.secret_files.\"{property}\": cannot read {}: {error}",
                    path.display()
                )),
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }

    /// A copy fit for printing: secret-looking options and options read from secret files
    /// show [`MASK`].
    pub fn masked(&self) -> Self {
        let mut masked = self.clone();
        for options in [
            &mut masked.options,
            &mut masked.consumer_options,
            &mut masked.producer_options,
        ] {
            mask_secret_options(options);
            for property in self.secret_files.keys() {
                if let Some(value) = options.get_mut(property) {
                    *value = MASK.to_owned();
                }
            }
        }
        masked
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kafka() -> KafkaConfig {
        KafkaConfig {
            brokers: "b:9092".into(),
            group_id: "g".into(),
            options: BTreeMap::new(),
            consumer_options: BTreeMap::new(),
            producer_options: BTreeMap::new(),
            secret_files: BTreeMap::new(),
            group_instance_id: String::new(),
        }
    }

    #[test]
    fn secret_files_become_options_and_are_masked_whatever_their_name() {
        let dir = tempfile::tempdir().unwrap();
        let (password, config) = (dir.path().join("password"), dir.path().join("jaas"));
        std::fs::write(&password, "hunter2-secret\n").unwrap();
        std::fs::write(&config, "principal=svc scope=kafka").unwrap();
        let mut kafka = kafka();
        kafka.secret_files.insert("sasl.password".into(), password);
        // A name without a secret marker: masked because it came from a secret file.
        kafka
            .secret_files
            .insert("sasl.kerberos.principal".into(), config);
        kafka.options.insert("sasl.username".into(), "svc".into());
        kafka.load_secret_files().unwrap();
        assert_eq!(kafka.options["sasl.password"], "hunter2-secret");
        assert_eq!(
            kafka.options["sasl.kerberos.principal"],
            "principal=svc scope=kafka"
        );
        let masked = kafka.masked();
        assert!(!format!("{kafka:?}").contains("hunter2"));
        assert_eq!(masked.options["sasl.password"], MASK);
        assert_eq!(masked.options["sasl.kerberos.principal"], MASK);
        assert_eq!(masked.options["sasl.username"], "svc");
    }

    #[test]
    fn unreadable_empty_or_doubled_secret_files_are_errors_that_quote_no_content() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "\n").unwrap();
        let doubled = dir.path().join("doubled");
        std::fs::write(&doubled, "value-that-must-not-leak").unwrap();
        let mut kafka = kafka();
        kafka
            .secret_files
            .insert("sasl.password".into(), dir.path().join("missing"));
        kafka
            .secret_files
            .insert("ssl.key.password".into(), empty.clone());
        kafka
            .secret_files
            .insert("sasl.oauthbearer.client.secret".into(), doubled);
        kafka
            .options
            .insert("sasl.oauthbearer.client.secret".into(), "inline".into());
        let problems = kafka.load_secret_files().unwrap_err();
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems.iter().any(|p| p.contains("missing")));
        assert!(problems.iter().any(|p| p.contains("is empty")));
        assert!(problems.iter().any(|p| p.contains("keep one")));
        assert!(!problems.join(" ").contains("value-that-must-not-leak"));
    }

    #[test]
    fn secret_looking_names_are_masked() {
        for name in [
            "sasl.password",
            "ssl.key.password",
            "sasl.oauthbearer.client.secret",
            "ssl.key.pem",
            "sasl.oauthbearer.config",
            "aws_session_token",
        ] {
            assert!(is_secret_option(name), "{name}");
        }
        for name in [
            "sasl.username",
            "ssl.ca.location",
            "security.protocol",
            "sasl.oauthbearer.token.endpoint.url",
        ] {
            assert!(!is_secret_option(name), "{name}");
        }
    }
}
