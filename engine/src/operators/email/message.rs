//! One email as the operator sees it, from either input form, and the readers of mail folders
//! that `train email` / `eval email` use.
//!
//! An `email` event is either parsed fields (the producer parsed the mail) or `raw_rfc822`
//! with an empty `from` (the operator parses it with `mail-parser`). Either way the result is a
//! [`MailMessage`]: the sender's and recipients' bare addresses (lower-cased), send time,
//! subject, plain-text body (HTML converted by the parser) and attachment sizes.
//!
//! Refusals ([`MessageError`]) name what is wrong, never the message's text: a mail without a
//! sender address (the per-user state is keyed by it), raw text that does not parse as a
//! message, or a negative attachment size. Mail folders: `*.jsonl` (one `email` event per
//! line), `*.eml` (one RFC822 message per file) and `*.mbox` (mboxrd), read in path order.

use std::io::BufRead;
use std::path::{Path, PathBuf};

use mail_parser::{Address, MessageParser};

use crate::events::EmailEvent;

/// Why an email cannot be scored; never quotes the message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    /// Neither parsed fields nor raw text name a sender address.
    #[error("email has no sender address")]
    NoSender,
    /// `raw_rfc822` is empty or not a message.
    #[error("raw_rfc822 is not an RFC822 message")]
    Unparseable,
    /// An attachment has a negative size.
    #[error("attachment {index} has a negative size")]
    NegativeAttachmentSize {
        /// Position of the attachment.
        index: usize,
    },
}

/// The parts of an email the features read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MailMessage {
    /// Sender address, lower-cased, without display name.
    pub from: String,
    /// To addresses.
    pub to: Vec<String>,
    /// Cc addresses.
    pub cc: Vec<String>,
    /// Bcc addresses.
    pub bcc: Vec<String>,
    /// Send time, epoch ms (Date header), if known.
    pub date_ms: Option<i64>,
    /// Subject.
    pub subject: String,
    /// Plain-text body.
    pub body: String,
    /// Decoded size of every attachment, bytes.
    pub attachment_sizes: Vec<u64>,
    /// Message-ID, when known.
    pub message_id: Option<String>,
}

/// The bare address in `raw` (`Name <a@b>` → `a@b`), trimmed and lower-cased; `None` when
/// it has no `@` with text on both sides.
pub fn bare_address(raw: &str) -> Option<String> {
    let text = without_display_name(raw);
    let at = text.rfind('@')?;
    (at > 0 && at + 1 < text.len()).then(|| text.to_lowercase())
}

/// The text inside the last `<…>` of `raw` (`Name <a@b>` → `a@b`), else `raw`; trimmed.
pub fn without_display_name(raw: &str) -> &str {
    let text = raw.trim();
    match (text.rfind('<'), text.rfind('>')) {
        (Some(open), Some(close)) if open < close => text[open + 1..close].trim(),
        _ => text,
    }
}

/// The domain of a bare address (after the last `@`).
pub fn domain_of(address: &str) -> &str {
    address.rsplit_once('@').map_or("", |(_, domain)| domain)
}

impl MailMessage {
    /// The message carried by `event`: its parsed fields, or its raw text when `from` is empty.
    pub fn from_event(event: &EmailEvent) -> Result<Self, MessageError> {
        if event.from.trim().is_empty() {
            if let Some(raw) = &event.raw_rfc822 {
                let mut message = Self::parse_rfc822(raw.as_bytes())?;
                if message.date_ms.is_none() {
                    message.date_ms = event.date_ms;
                }
                return Ok(message);
            }
        }
        let from = bare_address(&event.from).ok_or(MessageError::NoSender)?;
        let addresses = |list: &[String]| list.iter().filter_map(|a| bare_address(a)).collect();
        let mut attachment_sizes = Vec::with_capacity(event.attachments.len());
        for (index, attachment) in event.attachments.iter().enumerate() {
            let size = u64::try_from(attachment.size_bytes)
                .map_err(|_| MessageError::NegativeAttachmentSize { index })?;
            attachment_sizes.push(size);
        }
        Ok(Self {
            from,
            to: addresses(&event.to),
            cc: addresses(&event.cc),
            bcc: addresses(&event.bcc),
            date_ms: event.date_ms,
            subject: event.subject.clone(),
            body: event.body.clone(),
            attachment_sizes,
            message_id: event.event_id.clone(),
        })
    }

    /// Parses one RFC822 message.
    pub fn parse_rfc822(raw: &[u8]) -> Result<Self, MessageError> {
        if raw.iter().all(u8::is_ascii_whitespace) {
            return Err(MessageError::Unparseable);
        }
        let parsed = MessageParser::default()
            .parse(raw)
            .ok_or(MessageError::Unparseable)?;
        // A parse without a single header is body text, not a message.
        if parsed.headers().is_empty() {
            return Err(MessageError::Unparseable);
        }
        let from = parsed
            .from()
            .and_then(first_address)
            .ok_or(MessageError::NoSender)?;
        Ok(Self {
            from,
            to: all_addresses(parsed.to()),
            cc: all_addresses(parsed.cc()),
            bcc: all_addresses(parsed.bcc()),
            date_ms: parsed.date().map(|date| date.to_timestamp() * 1000),
            subject: parsed.subject().unwrap_or_default().to_owned(),
            body: parsed
                .body_text(0)
                .map(|body| body.into_owned())
                .unwrap_or_default(),
            attachment_sizes: parsed
                .attachments()
                .map(|part| part.contents().len() as u64)
                .collect(),
            message_id: parsed.message_id().map(str::to_owned),
        })
    }

    /// All recipients: to, then cc, then bcc.
    pub fn recipients(&self) -> impl Iterator<Item = &str> {
        self.to
            .iter()
            .chain(&self.cc)
            .chain(&self.bcc)
            .map(String::as_str)
    }
}

fn first_address(address: &Address<'_>) -> Option<String> {
    address
        .iter()
        .find_map(|addr| addr.address().and_then(bare_address))
}

fn all_addresses(address: Option<&Address<'_>>) -> Vec<String> {
    address
        .map(|address| {
            address
                .iter()
                .filter_map(|addr| addr.address().and_then(bare_address))
                .collect()
        })
        .unwrap_or_default()
}

/// One message read from a mail folder, with where it came from.
#[derive(Debug, Clone)]
pub struct FolderMessage {
    /// `event_id`, else Message-ID, else `<file>:<n>`.
    pub id: String,
    /// The message, or why it cannot be scored.
    pub message: Result<MailMessage, MessageError>,
}

/// Errors of reading a mail folder.
#[derive(Debug, thiserror::Error)]
pub enum FolderError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// A JSONL line is not an `email` event.
    #[error("{path}:{line}: not an email event: {message}")]
    Json {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// Cause (serde's message; it names fields, not values).
        message: String,
    },
    /// The folder holds no mail files.
    #[error("no *.jsonl, *.eml or *.mbox files under {0}")]
    Empty(PathBuf),
}

/// Every message of the `*.jsonl`, `*.eml` and `*.mbox` files under `dir` (recursively, in
/// path order). A message that cannot be scored is returned with its error, not skipped, so
/// callers count it.
pub fn read_mail_folder(dir: &Path) -> Result<Vec<FolderMessage>, FolderError> {
    let mut files = Vec::new();
    collect_files(dir, &mut files)?;
    files.sort();
    if files.is_empty() {
        return Err(FolderError::Empty(dir.to_owned()));
    }
    let mut messages = Vec::new();
    for path in files {
        let io = |source| FolderError::Io {
            path: path.clone(),
            source,
        };
        let name = path.display().to_string();
        match path.extension().and_then(|e| e.to_str()) {
            Some("jsonl") => {
                let reader = std::io::BufReader::new(std::fs::File::open(&path).map_err(io)?);
                for (index, line) in reader.lines().enumerate() {
                    let line = line.map_err(io)?;
                    if line.trim().is_empty() {
                        continue;
                    }
                    let event: EmailEvent =
                        serde_json::from_str(&line).map_err(|error| FolderError::Json {
                            path: path.clone(),
                            line: index + 1,
                            message: error.to_string(),
                        })?;
                    let id = event
                        .event_id
                        .clone()
                        .unwrap_or_else(|| format!("{name}:{}", index + 1));
                    messages.push(FolderMessage {
                        id,
                        message: MailMessage::from_event(&event),
                    });
                }
            }
            Some("eml") => {
                let raw = std::fs::read(&path).map_err(io)?;
                messages.push(folder_message(&raw, name));
            }
            Some("mbox") => {
                let reader = std::io::BufReader::new(std::fs::File::open(&path).map_err(io)?);
                let mbox = mail_parser::mailbox::mbox::MessageIterator::new(reader);
                for (index, entry) in mbox.enumerate() {
                    let entry = entry.map_err(io)?;
                    messages.push(folder_message(entry.contents(), format!("{name}:{index}")));
                }
            }
            _ => {}
        }
    }
    Ok(messages)
}

fn folder_message(raw: &[u8], fallback_id: String) -> FolderMessage {
    let message = MailMessage::parse_rfc822(raw);
    let id = message
        .as_ref()
        .ok()
        .and_then(|m| m.message_id.clone())
        .unwrap_or(fallback_id);
    FolderMessage { id, message }
}

fn collect_files(dir: &Path, files: &mut Vec<PathBuf>) -> Result<(), FolderError> {
    let entries = std::fs::read_dir(dir).map_err(|source| FolderError::Io {
        path: dir.to_owned(),
        source,
    })?;
    for entry in entries {
        let path = entry
            .map_err(|source| FolderError::Io {
                path: dir.to_owned(),
                source,
            })?
            .path();
        if path.is_dir() {
            collect_files(&path, files)?;
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("jsonl" | "eml" | "mbox")
        ) {
            files.push(path);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Attachment;

    const RAW: &str = "From: \"Jane Doe\" <Jane.Doe@Corp.example>\r\n\
To: bob@corp.example, Eve <eve@outside.example>\r\n\
Cc: carol@corp.example\r\n\
Bcc: drop@mail.example\r\n\
Subject: quarterly numbers\r\n\
Date: Tue, 05 Nov 2024 23:15:00 +0000\r\n\
Message-ID: <m1@corp.example>\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"b\"\r\n\
\r\n\
--b\r\n\
Content-Type: text/plain\r\n\
\r\n\
See attached.\r\n\
--b\r\n\
Content-Type: application/octet-stream\r\n\
Content-Disposition: attachment; filename=\"q.xlsx\"\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
AAECAwQFBgcICQ==\r\n\
--b--\r\n";

    #[test]
    fn raw_messages_parse_into_addresses_time_body_and_attachments() {
        let message = MailMessage::parse_rfc822(RAW.as_bytes()).unwrap();
        assert_eq!(message.from, "jane.doe@corp.example");
        assert_eq!(message.to, ["bob@corp.example", "eve@outside.example"]);
        assert_eq!(message.cc, ["carol@corp.example"]);
        assert_eq!(message.bcc, ["drop@mail.example"]);
        assert_eq!(message.date_ms, Some(1_730_848_500_000));
        assert_eq!(message.subject, "quarterly numbers");
        assert_eq!(message.body.trim(), "See attached.");
        assert_eq!(message.attachment_sizes, [10]);
        assert_eq!(message.message_id.as_deref(), Some("m1@corp.example"));
    }

    #[test]
    fn events_with_raw_text_and_empty_from_are_parsed() {
        let event = EmailEvent {
            event_id: None,
            from: String::new(),
            to: vec![],
            cc: vec![],
            bcc: vec![],
            date_ms: None,
            subject: String::new(),
            body: String::new(),
            attachments: vec![],
            raw_rfc822: Some(RAW.to_owned()),
        };
        let message = MailMessage::from_event(&event).unwrap();
        assert_eq!(message.recipients().count(), 4);
    }

    #[test]
    fn parsed_fields_are_normalised_and_checked() {
        let mut event = EmailEvent {
            event_id: Some("e1".into()),
            from: "Jane <JANE@corp.example>".into(),
            to: vec!["not an address".into(), "Bob <bob@corp.example>".into()],
            cc: vec![],
            bcc: vec![],
            date_ms: Some(5),
            subject: "s".into(),
            body: "b".into(),
            attachments: vec![Attachment {
                filename: "a".into(),
                content_type: "text/plain".into(),
                size_bytes: 7,
            }],
            raw_rfc822: None,
        };
        let message = MailMessage::from_event(&event).unwrap();
        assert_eq!(message.from, "jane@corp.example");
        assert_eq!(message.to, ["bob@corp.example"]);
        assert_eq!(message.attachment_sizes, [7]);
        event.attachments[0].size_bytes = -1;
        assert_eq!(
            MailMessage::from_event(&event),
            Err(MessageError::NegativeAttachmentSize { index: 0 })
        );
        event.from = "nobody".into();
        assert_eq!(MailMessage::from_event(&event), Err(MessageError::NoSender));
    }

    #[test]
    fn non_messages_are_refused_without_quoting() {
        for raw in ["", "   \r\n", "just some words without headers"] {
            let error = MailMessage::parse_rfc822(raw.as_bytes()).unwrap_err();
            assert!(!error.to_string().contains("words"));
        }
        let no_sender = "To: bob@corp.example\r\nSubject: x\r\n\r\nhello\r\n";
        assert_eq!(
            MailMessage::parse_rfc822(no_sender.as_bytes()),
            Err(MessageError::NoSender)
        );
    }

    #[test]
    fn folders_read_jsonl_eml_and_mbox() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("one.eml"), RAW).unwrap();
        let mbox = format!("From jane Tue Nov  5 23:15:00 2024\n{RAW}\nFrom bob Tue Nov  5 23:16:00 2024\nFrom: bob@corp.example\nTo: jane@corp.example\nSubject: re\n\nok\n");
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/box.mbox"), mbox).unwrap();
        std::fs::write(
            dir.path().join("events.jsonl"),
            "{\"event_id\":\"x1\",\"from\":\"a@corp.example\"}\n\n{\"from\":\"\"}\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("notes.txt"), "ignored").unwrap();
        let messages = read_mail_folder(dir.path()).unwrap();
        let ids: Vec<_> = messages.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ids[0], "x1");
        assert!(ids[1].ends_with("events.jsonl:3"));
        assert_eq!(messages[1].message, Err(MessageError::NoSender));
        assert_eq!(ids[2], "m1@corp.example");
        assert_eq!(ids[3], "m1@corp.example");
        assert_eq!(
            messages[4].message.as_ref().unwrap().from,
            "bob@corp.example"
        );
        assert_eq!(messages.len(), 5);
        let empty = tempfile::tempdir().unwrap();
        assert!(matches!(
            read_mail_folder(empty.path()),
            Err(FolderError::Empty(_))
        ));
    }
}
