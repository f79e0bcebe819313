//! The email evaluation set: an organisation's mail built from real SpamAssassin ham text,
//! with insider scenarios injected for a minority of users — reproducible from a seed
//! (`threatflow generate emails`).
//!
//! **Text**: subjects, bodies and attachment metadata of the 4,150 ham messages
//! (`models/email/sources/ham.jsonl.gz`). Each ham message belongs to the training pool or the
//! holdout pool (by a hash of its id and the seed, `holdout_fraction` to holdout), so no
//! holdout text was seen in training.
//!
//! **Organisation**: `users` people `first.last@corp.example` (the sender's own domain is
//! internal), each with a profile drawn once: 3–12 colleagues, 0–4 outside contacts (partner
//! domains and webmail), 3–20 messages a week, work hours starting 7–9 and ending 16–19, a
//! 2–8 % share of mail outside them (evenings and weekends), a 5–35 % share to outside
//! contacts, Cc on 30 %, one Bcc on 3 %, and attachments (50 KB–3 MB, log-uniform) on
//! 4–15 % of messages. 1 % of normal messages are announcements: 10–60 colleagues in Bcc.
//! Times are UTC; the default feature settings (UTC, 07–19, Mon–Fri) match.
//!
//! **Insider scenarios** (holdout only; `insiders` users, scenarios in turn), each a burst of
//! 4–10 messages over 2–5 days somewhere after the first week, on top of the user's normal mail:
//! - `offhours_exfiltration`: 21:00–05:00 or weekends, to 1–2 personal webmail addresses,
//!   2–5 threat keywords worked into the text, 1–3 attachments of 1–20 MB;
//! - `bcc_distribution`: 8–40 recipients, all in Bcc, mostly outside (several domains);
//! - `attachment_spike`: 4–15 attachments totalling 20–80 MB, to 1–3 outside addresses, in
//!   work hours.
//!
//! **Output** (`out/`): `train/emails.jsonl` (normal mail only), `holdout/emails.jsonl`, and
//! `holdout/labels.csv` (`event_id,user,label,scenario`; label 1 for injected messages).
//! Lines are `email` events in time order; 5 % of the messages without attachments are
//! written as raw RFC822 (`from` empty, `raw_rfc822` set) so the parser path is exercised.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use chrono::{TimeZone, Utc};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::Deserialize;

use crate::events::{Attachment, EmailEvent};
use crate::operators::email::features::bucket;

/// Domain of the synthetic organisation.
pub const ORG_DOMAIN: &str = "corp.example";
/// Scenario names, in the order insiders get them.
pub const SCENARIOS: [&str; 3] = [
    "offhours_exfiltration",
    "bcc_distribution",
    "attachment_spike",
];

const FIRST: [&str; 32] = [
    "james",
    "mary",
    "robert",
    "patricia",
    "john",
    "jennifer",
    "michael",
    "linda",
    "david",
    "elizabeth",
    "william",
    "barbara",
    "richard",
    "susan",
    "joseph",
    "jessica",
    "thomas",
    "sarah",
    "charles",
    "karen",
    "daniel",
    "nancy",
    "matthew",
    "lisa",
    "anthony",
    "betty",
    "mark",
    "sandra",
    "paul",
    "ashley",
    "steven",
    "kimberly",
];
const LAST: [&str; 32] = [
    "smith",
    "johnson",
    "williams",
    "brown",
    "jones",
    "garcia",
    "miller",
    "davis",
    "rodriguez",
    "martinez",
    "hernandez",
    "lopez",
    "gonzalez",
    "wilson",
    "anderson",
    "thomas",
    "taylor",
    "moore",
    "jackson",
    "martin",
    "lee",
    "perez",
    "thompson",
    "white",
    "harris",
    "sanchez",
    "clark",
    "ramirez",
    "lewis",
    "robinson",
    "walker",
    "young",
];
const PARTNERS: [&str; 6] = [
    "partner-logistics.example",
    "acme-supplies.example",
    "lawfirm.example",
    "auditors.example",
    "cloudvendor.example",
    "customer-one.example",
];
const WEBMAIL: [&str; 4] = ["gmail.com", "protonmail.com", "outlook.com", "yahoo.com"];
const INJECTED_PHRASES: [&str; 8] = [
    "confidential",
    "internal only",
    "secret",
    "credentials",
    "download the full copy",
    "do not share - proprietary",
    "restricted",
    "leaked",
];

/// Generator options.
#[derive(Debug, Clone)]
pub struct GenerateOptions {
    /// `ham.jsonl.gz`.
    pub sources: PathBuf,
    /// Output directory.
    pub out: PathBuf,
    /// People in the organisation.
    pub users: usize,
    /// Of them, insiders in the holdout period.
    pub insiders: usize,
    /// Weeks of training mail, and (after it) weeks of holdout mail.
    pub weeks: u32,
    /// Share of ham texts reserved for the holdout period.
    pub holdout_fraction: f64,
    /// Seed.
    pub seed: u64,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        Self {
            sources: PathBuf::from("models/email/sources/ham.jsonl.gz"),
            out: PathBuf::from("models/email/data"),
            users: 200,
            insiders: 8,
            weeks: 4,
            holdout_fraction: 0.3,
            seed: 42,
        }
    }
}

/// One ham message's reusable parts.
#[derive(Debug, Clone, Deserialize)]
pub struct HamText {
    /// `group/stem`.
    pub id: String,
    /// Subject.
    pub subject: String,
    /// Body text.
    pub body: String,
    /// Attachment metadata.
    pub attachments: Vec<Attachment>,
}

/// Reads `ham.jsonl.gz`.
pub fn read_ham(path: &Path) -> Result<Vec<HamText>, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let reader = std::io::BufReader::new(flate2::read::GzDecoder::new(file));
    let mut texts = Vec::new();
    for (index, line) in reader.lines().enumerate() {
        let line = line.map_err(|e| format!("{}: {e}", path.display()))?;
        let text: HamText = serde_json::from_str(&line)
            .map_err(|e| format!("{}:{}: {e}", path.display(), index + 1))?;
        texts.push(text);
    }
    Ok(texts)
}

#[derive(Debug, Clone)]
struct Profile {
    address: String,
    colleagues: Vec<String>,
    contacts: Vec<String>,
    per_week: f64,
    start_hour: u32,
    end_hour: u32,
    off_hours_share: f64,
    external_share: f64,
    attachment_share: f64,
}

/// One generated message with its label.
#[derive(Debug, Clone)]
pub struct GeneratedEmail {
    /// The event.
    pub event: EmailEvent,
    /// Sender's user key.
    pub user: String,
    /// Injected insider message.
    pub label: u8,
    /// Scenario, or `normal`.
    pub scenario: &'static str,
}

/// What [`generate`] wrote.
#[derive(Debug, Clone)]
pub struct GenerateSummary {
    /// Training messages.
    pub train_messages: usize,
    /// Holdout messages.
    pub holdout_messages: usize,
    /// Injected messages (holdout).
    pub injected_messages: usize,
    /// Insider user keys.
    pub insiders: Vec<String>,
}

const WEEK_MS: i64 = 7 * 86_400_000;
/// Monday 2026-01-05 00:00 UTC: the first training day.
const START_MS: i64 = 1_767_571_200_000;

fn profiles(users: usize, rng: &mut StdRng) -> Vec<Profile> {
    let mut names: Vec<String> = FIRST
        .iter()
        .flat_map(|f| LAST.iter().map(move |l| format!("{f}.{l}")))
        .collect();
    names.shuffle(rng);
    names.truncate(users);
    let addresses: Vec<String> = names.iter().map(|n| format!("{n}@{ORG_DOMAIN}")).collect();
    (0..addresses.len())
        .map(|index| {
            let colleague_count = rng.gen_range(3..=12).min(addresses.len() - 1);
            let mut colleagues = Vec::new();
            while colleagues.len() < colleague_count {
                let other = &addresses[rng.gen_range(0..addresses.len())];
                if *other != addresses[index] && !colleagues.contains(other) {
                    colleagues.push(other.clone());
                }
            }
            let contacts = (0..rng.gen_range(0..=4))
                .map(|c| {
                    let domain = if rng.gen_bool(0.3) {
                        WEBMAIL[rng.gen_range(0..WEBMAIL.len())]
                    } else {
                        PARTNERS[rng.gen_range(0..PARTNERS.len())]
                    };
                    format!("{}{c}@{domain}", LAST[rng.gen_range(0..LAST.len())])
                })
                .collect();
            Profile {
                address: addresses[index].clone(),
                colleagues,
                contacts,
                per_week: rng.gen_range(3.0..20.0),
                start_hour: rng.gen_range(7..=9),
                end_hour: rng.gen_range(16..=19),
                off_hours_share: rng.gen_range(0.02..0.08),
                external_share: rng.gen_range(0.05..0.35),
                attachment_share: rng.gen_range(0.04..0.15),
            }
        })
        .collect()
}

fn log_uniform(rng: &mut StdRng, low: f64, high: f64) -> i64 {
    (low.ln() + rng.gen::<f64>() * (high.ln() - low.ln())).exp() as i64
}

fn attachment(rng: &mut StdRng, low: f64, high: f64) -> Attachment {
    let kinds = [
        ("report.pdf", "application/pdf"),
        ("data.xlsx", "application/vnd.ms-excel"),
        ("notes.docx", "application/msword"),
        ("archive.zip", "application/zip"),
    ];
    let (name, kind) = kinds[rng.gen_range(0..kinds.len())];
    Attachment {
        filename: name.to_owned(),
        content_type: kind.to_owned(),
        size_bytes: log_uniform(rng, low, high),
    }
}

/// A time in `day_start + [hour_low, hour_high)` hours.
fn at_hour(rng: &mut StdRng, day_ms: i64, hour_low: u32, hour_high: u32) -> i64 {
    let hour = rng.gen_range(hour_low..hour_high.max(hour_low + 1));
    day_ms + i64::from(hour) * 3_600_000 + rng.gen_range(0..3_600_000)
}

fn normal_time(rng: &mut StdRng, profile: &Profile, week_ms: i64) -> i64 {
    if rng.gen_bool(profile.off_hours_share) {
        // Evening on a weekday, or daytime at the weekend.
        if rng.gen_bool(0.6) {
            let day = week_ms + rng.gen_range(0..5) * 86_400_000;
            at_hour(rng, day, profile.end_hour + 1, 23)
        } else {
            let day = week_ms + rng.gen_range(5..7) * 86_400_000;
            at_hour(rng, day, 9, 18)
        }
    } else {
        let day = week_ms + rng.gen_range(0..5) * 86_400_000;
        at_hour(rng, day, profile.start_hour, profile.end_hour)
    }
}

fn event(
    from: &str,
    to: Vec<String>,
    cc: Vec<String>,
    bcc: Vec<String>,
    date_ms: i64,
    text: &HamText,
) -> EmailEvent {
    EmailEvent {
        event_id: None,
        from: from.to_owned(),
        to,
        cc,
        bcc,
        date_ms: Some(date_ms),
        subject: text.subject.clone(),
        body: text.body.clone(),
        attachments: Vec::new(),
        raw_rfc822: None,
    }
}

fn normal_message(rng: &mut StdRng, profile: &Profile, date_ms: i64, text: &HamText) -> EmailEvent {
    let pick = |rng: &mut StdRng, list: &[String]| list[rng.gen_range(0..list.len())].clone();
    if rng.gen_bool(0.01) {
        // Announcement: colleagues in Bcc.
        let bcc = (0..rng.gen_range(10..=60))
            .map(|_| pick(rng, &profile.colleagues))
            .collect();
        return event(
            &profile.address,
            vec![profile.address.clone()],
            vec![],
            bcc,
            date_ms,
            text,
        );
    }
    let mut to = Vec::new();
    for _ in 0..rng.gen_range(1..=3) {
        let outside = !profile.contacts.is_empty() && rng.gen_bool(profile.external_share);
        to.push(pick(
            rng,
            if outside {
                &profile.contacts
            } else {
                &profile.colleagues
            },
        ));
    }
    let cc = if rng.gen_bool(0.3) {
        (0..rng.gen_range(1..=2))
            .map(|_| pick(rng, &profile.colleagues))
            .collect()
    } else {
        Vec::new()
    };
    let bcc = if rng.gen_bool(0.03) {
        vec![pick(rng, &profile.colleagues)]
    } else {
        Vec::new()
    };
    let mut message = event(&profile.address, to, cc, bcc, date_ms, text);
    message.attachments = text.attachments.clone();
    if message.attachments.is_empty() && rng.gen_bool(profile.attachment_share) {
        message.attachments = (0..rng.gen_range(1..=2))
            .map(|_| attachment(rng, 50e3, 3e6))
            .collect();
    }
    message
}

fn webmail_address(rng: &mut StdRng, profile: &Profile) -> String {
    let name = profile
        .address
        .split('@')
        .next()
        .unwrap_or("me")
        .replace('.', "");
    format!(
        "{name}{}@{}",
        rng.gen_range(10..99),
        WEBMAIL[rng.gen_range(0..WEBMAIL.len())]
    )
}

fn with_phrases(rng: &mut StdRng, text: &HamText) -> HamText {
    let mut text = text.clone();
    let count = rng.gen_range(2..=5);
    let phrases: Vec<&str> = (0..count)
        .map(|_| INJECTED_PHRASES[rng.gen_range(0..INJECTED_PHRASES.len())])
        .collect();
    text.subject = format!("{} ({})", text.subject, phrases[0]);
    text.body = format!("{}\n\n{}", phrases[1..].join(". "), text.body);
    text
}

fn insider_message(
    rng: &mut StdRng,
    scenario: &str,
    profile: &Profile,
    day_ms: i64,
    text: &HamText,
) -> EmailEvent {
    match scenario {
        "offhours_exfiltration" => {
            let date = if rng.gen_bool(0.7) {
                let hour = [21, 22, 23, 0, 1, 2, 3, 4][rng.gen_range(0..8)];
                day_ms + hour * 3_600_000 + rng.gen_range(0..3_600_000)
            } else {
                // The Saturday of that week.
                let monday = day_ms - (day_ms - START_MS).rem_euclid(WEEK_MS);
                at_hour(rng, monday + 5 * 86_400_000, 10, 22)
            };
            let to = (0..rng.gen_range(1..=2))
                .map(|_| webmail_address(rng, profile))
                .collect();
            let mut message = event(
                &profile.address,
                to,
                vec![],
                vec![],
                date,
                &with_phrases(rng, text),
            );
            message.attachments = (0..rng.gen_range(1..=3))
                .map(|_| attachment(rng, 1e6, 20e6))
                .collect();
            message
        }
        "bcc_distribution" => {
            let date = at_hour(rng, day_ms, 6, 21);
            let bcc = (0..rng.gen_range(8..=40))
                .map(|i| {
                    if rng.gen_bool(0.8) {
                        let domain = if rng.gen_bool(0.5) {
                            WEBMAIL[rng.gen_range(0..WEBMAIL.len())]
                        } else {
                            PARTNERS[rng.gen_range(0..PARTNERS.len())]
                        };
                        format!("{}{i}@{domain}", LAST[rng.gen_range(0..LAST.len())])
                    } else {
                        profile.colleagues[rng.gen_range(0..profile.colleagues.len())].clone()
                    }
                })
                .collect();
            event(&profile.address, vec![], vec![], bcc, date, text)
        }
        _ => {
            let date = at_hour(rng, day_ms, profile.start_hour, profile.end_hour);
            let to = (0..rng.gen_range(1..=3))
                .map(|_| {
                    format!(
                        "{}@{}",
                        LAST[rng.gen_range(0..LAST.len())],
                        PARTNERS[rng.gen_range(0..PARTNERS.len())]
                    )
                })
                .collect();
            let mut message = event(&profile.address, to, vec![], vec![], date, text);
            let count = rng.gen_range(4..=15);
            let total = log_uniform(rng, 20e6, 80e6);
            message.attachments = (0..count)
                .map(|_| {
                    let mut a = attachment(rng, 1.0, 2.0);
                    a.size_bytes = total / count;
                    a
                })
                .collect();
            message
        }
    }
}

/// Stable across builds (FNV-1a, not std's hasher), so a seed always selects the same texts.
fn in_holdout(id: &str, seed: u64, fraction: f64) -> bool {
    bucket(&format!("{id}/{seed}"), 10_000) as f64 / 10_000.0 < fraction
}

/// The RFC822 text of a message without attachments.
pub fn to_rfc822(event: &EmailEvent, message_id: &str) -> String {
    let date = Utc
        .timestamp_millis_opt(event.date_ms.unwrap_or(0))
        .single()
        .map(|t| t.to_rfc2822())
        .unwrap_or_default();
    let mut raw = format!("From: {}\r\n", event.from);
    for (name, list) in [("To", &event.to), ("Cc", &event.cc), ("Bcc", &event.bcc)] {
        if !list.is_empty() {
            raw.push_str(&format!("{name}: {}\r\n", list.join(", ")));
        }
    }
    let subject: String = event.subject.chars().filter(|c| !c.is_control()).collect();
    raw.push_str(&format!(
        "Subject: {subject}\r\nDate: {date}\r\nMessage-ID: <{message_id}>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
    ));
    for line in event.body.lines() {
        raw.push_str(line);
        raw.push_str("\r\n");
    }
    raw
}

fn period(
    rng: &mut StdRng,
    profiles: &[Profile],
    texts: &[&HamText],
    start_ms: i64,
    weeks: u32,
) -> Vec<GeneratedEmail> {
    let mut out = Vec::new();
    for profile in profiles {
        for week in 0..i64::from(weeks) {
            let week_ms = start_ms + week * WEEK_MS;
            // Poisson-like count: the weekly mean ± a few.
            let count = (profile.per_week + rng.gen_range(-2.0..2.0))
                .round()
                .max(0.0) as usize;
            for _ in 0..count {
                let text = texts[rng.gen_range(0..texts.len())];
                let date = normal_time(rng, profile, week_ms);
                out.push(GeneratedEmail {
                    event: normal_message(rng, profile, date, text),
                    user: user_of(&profile.address),
                    label: 0,
                    scenario: "normal",
                });
            }
        }
    }
    out
}

fn user_of(address: &str) -> String {
    super::user_key::user_key(address).unwrap_or_default()
}

/// Generates the set and writes it under `options.out`.
pub fn generate(options: &GenerateOptions) -> Result<GenerateSummary, String> {
    if options.users < 2 || options.insiders >= options.users || options.weeks < 2 {
        return Err("need at least 2 users, fewer insiders than users and 2 weeks".into());
    }
    let ham = read_ham(&options.sources)?;
    let (holdout_texts, train_texts): (Vec<&HamText>, Vec<&HamText>) = ham
        .iter()
        .partition(|t| in_holdout(&t.id, options.seed, options.holdout_fraction));
    if holdout_texts.is_empty() || train_texts.is_empty() {
        return Err("holdout_fraction leaves one pool empty".into());
    }
    let mut rng = StdRng::seed_from_u64(options.seed);
    let profiles = profiles(options.users, &mut rng);
    let train = period(&mut rng, &profiles, &train_texts, START_MS, options.weeks);
    let holdout_start = START_MS + i64::from(options.weeks) * WEEK_MS;
    let mut holdout = period(
        &mut rng,
        &profiles,
        &holdout_texts,
        holdout_start,
        options.weeks,
    );
    let mut insiders = Vec::new();
    let mut chosen: Vec<usize> = (0..profiles.len()).collect();
    chosen.shuffle(&mut rng);
    for (turn, &index) in chosen.iter().take(options.insiders).enumerate() {
        let profile = &profiles[index];
        let scenario = SCENARIOS[turn % SCENARIOS.len()];
        insiders.push(user_of(&profile.address));
        let first_day = rng.gen_range(7..(i64::from(options.weeks) * 7 - 5));
        let days = rng.gen_range(2..=5);
        for _ in 0..rng.gen_range(4..=10) {
            let day_ms = holdout_start + (first_day + rng.gen_range(0..days)) * 86_400_000;
            let text = holdout_texts[rng.gen_range(0..holdout_texts.len())];
            holdout.push(GeneratedEmail {
                event: insider_message(&mut rng, scenario, profile, day_ms, text),
                user: user_of(&profile.address),
                label: 1,
                scenario,
            });
        }
    }
    let injected = holdout.iter().filter(|m| m.label == 1).count();
    let summary = GenerateSummary {
        train_messages: train.len(),
        holdout_messages: holdout.len(),
        injected_messages: injected,
        insiders,
    };
    write_period(&options.out.join("train"), "train", train, &mut rng, false)?;
    write_period(
        &options.out.join("holdout"),
        "holdout",
        holdout,
        &mut rng,
        true,
    )?;
    Ok(summary)
}

fn write_period(
    dir: &Path,
    prefix: &str,
    mut messages: Vec<GeneratedEmail>,
    rng: &mut StdRng,
    labels: bool,
) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    messages.sort_by_key(|m| m.event.date_ms);
    let io = |e: std::io::Error| format!("{}: {e}", dir.display());
    let mut events =
        std::io::BufWriter::new(std::fs::File::create(dir.join("emails.jsonl")).map_err(io)?);
    let mut label_file = if labels {
        let mut file =
            std::io::BufWriter::new(std::fs::File::create(dir.join("labels.csv")).map_err(io)?);
        writeln!(file, "event_id,user,label,scenario").map_err(io)?;
        Some(file)
    } else {
        None
    };
    for (index, mut message) in messages.into_iter().enumerate() {
        let id = format!("{prefix}-{index:06}");
        if message.event.attachments.is_empty() && rng.gen_bool(0.05) {
            let raw = to_rfc822(&message.event, &format!("{id}@{ORG_DOMAIN}"));
            message.event = EmailEvent {
                event_id: None,
                from: String::new(),
                to: vec![],
                cc: vec![],
                bcc: vec![],
                date_ms: None,
                subject: String::new(),
                body: String::new(),
                attachments: vec![],
                raw_rfc822: Some(raw),
            };
        }
        message.event.event_id = Some(id.clone());
        serde_json::to_writer(&mut events, &message.event).map_err(|e| e.to_string())?;
        writeln!(events).map_err(io)?;
        if let Some(file) = &mut label_file {
            writeln!(
                file,
                "{id},{},{},{}",
                message.user, message.label, message.scenario
            )
            .map_err(io)?;
        }
    }
    events.flush().map_err(io)?;
    if let Some(file) = &mut label_file {
        file.flush().map_err(io)?;
    }
    Ok(())
}

/// One row of `labels.csv`.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelRow {
    /// Event id.
    pub event_id: String,
    /// User key.
    pub user: String,
    /// 1 injected.
    pub label: u8,
    /// Scenario.
    pub scenario: String,
}

/// Reads `labels.csv`.
pub fn read_labels(path: &Path) -> Result<Vec<LabelRow>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut rows = Vec::new();
    for (index, line) in text.lines().enumerate().skip(1) {
        let fields: Vec<&str> = line.split(',').collect();
        let [event_id, user, label, scenario] = fields[..] else {
            return Err(format!(
                "{}:{}: expected event_id,user,label,scenario",
                path.display(),
                index + 1
            ));
        };
        rows.push(LabelRow {
            event_id: event_id.to_owned(),
            user: user.to_owned(),
            label: label
                .parse()
                .map_err(|_| format!("{}:{}: label must be 0 or 1", path.display(), index + 1))?,
            scenario: scenario.to_owned(),
        });
    }
    Ok(rows)
}
