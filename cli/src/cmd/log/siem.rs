//! Export formats a SIEM ingests as they are: Elastic Common Schema JSON
//! (`ecs`), OCSF File System Activity (`ocsf`) and ArcSight CEF (`cef`).
//!
//! Events map to file activity; drop records (records lost: queue full,
//! write failures, kernel overflow, a lost log file) are exported too, so
//! the gap is visible in the SIEM: ECS `event.kind: pipeline_error`, OCSF
//! Base Event (class 0) with the count in `unmapped`, CEF class
//! `fltpolicy:dropped`. End-of-file records only structure the file and
//! are not exported in these formats. The field mapping is in
//! docs/audit-log.md; the tests check every emitted field against the
//! schemas' field lists.
use fltpolicy_audit::reader::{to_hex, DecodedRecord, EventEntry, RecordBody};
use fltpolicy_audit::rfc3339;
use fltpolicy_core::event::{Action, Op};
use fltpolicy_core::record::{flags, DropRecord};
use serde_json::{json, Map, Value};

/// ECS version the output follows.
pub const ECS_VERSION: &str = "8.11.0";
/// OCSF schema version the output follows.
pub const OCSF_VERSION: &str = "1.1.0";
const PRODUCT: &str = "fltpolicy";
const VENDOR: &str = "fltpolicy";

/// Where the record came from: the writer's host (file header).
#[derive(Clone, Copy, Debug)]
pub struct Origin<'a> {
    pub host: &'a str,
}

fn dir_and_name(path: &str) -> (&str, &str) {
    match path.rfind(['/', '\\']) {
        Some(i) => (&path[..i.max(1)], &path[i + 1..]),
        None => ("", path),
    }
}

fn extension(name: &str) -> Option<&str> {
    name.rfind('.')
        .filter(|&i| i > 0 && i + 1 < name.len())
        .map(|i| &name[i + 1..])
}

/// A numeric user id or Windows SID, rather than a name.
fn is_user_id(u: &str) -> bool {
    (!u.is_empty() && u.bytes().all(|b| b.is_ascii_digit())) || u.starts_with("S-1-")
}

fn denied(e: &EventEntry) -> bool {
    e.action.action() == Some(Action::Deny)
}

// ---- ECS ----------------------------------------------------------------

fn ecs_type(op: Option<Op>) -> &'static str {
    match op {
        Some(Op::Create) => "creation",
        Some(Op::Delete) => "deletion",
        Some(Op::Write | Op::Rename | Op::SetInfo) => "change",
        Some(Op::Open | Op::Read | Op::Close) => "access",
        None => "info",
    }
}

/// One record as an ECS document (`None` for end-of-file records).
pub fn record_ecs(r: &DecodedRecord, o: Origin<'_>) -> Option<Value> {
    let common = |v: &mut Map<String, Value>| {
        v.insert("@timestamp".into(), json!(rfc3339(r.time_ns)));
        v.insert("ecs".into(), json!({ "version": ECS_VERSION }));
        v.insert("host".into(), json!({ "hostname": o.host }));
        v.insert(
            "observer".into(),
            json!({ "vendor": VENDOR, "product": PRODUCT, "type": "file-system-filter" }),
        );
    };
    let mut v = Map::new();
    match &r.body {
        RecordBody::Event(e) => {
            common(&mut v);
            let (dir, name) = dir_and_name(&e.path);
            let mut file =
                json!({ "path": e.path, "name": name, "directory": dir, "size": e.size });
            if let Some(x) = extension(name) {
                file["extension"] = json!(x);
            }
            let mut types = vec![ecs_type(e.op)];
            types.push(if denied(e) { "denied" } else { "allowed" });
            v.insert(
                "event".into(),
                json!({
                    "kind": "event",
                    "category": ["file"],
                    "type": types,
                    "action": e.op_name(),
                    "outcome": if denied(e) { "failure" } else { "success" },
                    "sequence": r.seq,
                    "module": PRODUCT,
                    "dataset": "fltpolicy.audit",
                    "severity": if denied(e) { 7 } else { 3 },
                }),
            );
            v.insert("file".into(), file);
            v.insert(
                "process".into(),
                json!({
                    "pid": e.pid,
                    "executable": e.image,
                    "name": e.process(),
                    "parent": { "pid": e.ppid },
                }),
            );
            if !e.user.is_empty() {
                let key = if is_user_id(&e.user) { "id" } else { "name" };
                v.insert("user".into(), json!({ key: e.user }));
            }
            let mut rule = json!({
                "ruleset": to_hex(&e.policy.hash),
                "version": e.policy.generation.to_string(),
            });
            if let Some(id) = e.rule {
                rule["id"] = json!(id.to_string());
                rule["reference"] = json!(format!("line {}", e.line));
            }
            if !e.tag.is_empty() {
                rule["name"] = json!(e.tag);
                v.insert("tags".into(), json!([e.tag]));
            }
            v.insert("rule".into(), rule);
            if let Some(st) = e.status {
                v.insert("error".into(), json!({ "code": st.to_string() }));
            }
            let fl: Vec<&str> = flags::names(e.flags).collect();
            if !fl.is_empty() {
                v.insert("labels".into(), json!({ "fltpolicy_flags": fl.join(",") }));
            }
            v.insert(
                "message".into(),
                json!(format!(
                    "{} {} {} by {} (pid {})",
                    e.action.name(),
                    e.op_name(),
                    e.path,
                    e.process(),
                    e.pid
                )),
            );
        }
        RecordBody::Dropped(d) => {
            common(&mut v);
            v.insert(
                "event".into(),
                json!({
                    "kind": "pipeline_error",
                    "category": ["file"],
                    "type": ["info"],
                    "action": "records-dropped",
                    "outcome": "failure",
                    "sequence": r.seq,
                    "module": PRODUCT,
                    "dataset": "fltpolicy.audit",
                    "reason": d.reason.name(),
                    "severity": 5,
                }),
            );
            v.insert(
                "labels".into(),
                json!({
                    "fltpolicy_dropped_count": d.count.to_string(),
                    "fltpolicy_after_seq": d.after_seq.to_string(),
                    "fltpolicy_since": rfc3339(d.since_ns),
                }),
            );
            v.insert("message".into(), json!(drop_message(d)));
        }
        RecordBody::End(_) => return None,
    }
    Some(Value::Object(v))
}

fn drop_message(d: &DropRecord) -> String {
    format!(
        "{} records dropped between seq {} and {} ({})",
        d.count,
        d.after_seq,
        d.seq,
        d.reason.name()
    )
}

// ---- OCSF ---------------------------------------------------------------

/// OCSF File System Activity `activity_id` and its name.
fn ocsf_activity(op: Option<Op>) -> (u32, &'static str) {
    match op {
        Some(Op::Create) => (1, "Create"),
        Some(Op::Read) => (2, "Read"),
        Some(Op::Write) => (3, "Update"),
        Some(Op::Delete) => (4, "Delete"),
        Some(Op::Rename) => (5, "Rename"),
        Some(Op::SetInfo) => (6, "Set Attributes"),
        Some(Op::Open) => (14, "Open"),
        Some(Op::Close) => (99, "Other"),
        None => (0, "Unknown"),
    }
}

fn ocsf_metadata(r: &DecodedRecord) -> Value {
    json!({
        "version": OCSF_VERSION,
        "product": { "name": PRODUCT, "vendor_name": VENDOR },
        "sequence": r.seq,
        "log_name": "fltpolicy audit log",
    })
}

/// One record as an OCSF event (`None` for end-of-file records).
pub fn record_ocsf(r: &DecodedRecord, o: Origin<'_>) -> Option<Value> {
    let time_ms = r.time_ns / 1_000_000;
    match &r.body {
        RecordBody::Event(e) => {
            let (activity_id, activity_name) = ocsf_activity(e.op);
            let (dir, name) = dir_and_name(&e.path);
            let (severity_id, severity) = if denied(e) {
                (3, "Medium")
            } else {
                (1, "Informational")
            };
            let mut user = json!({});
            if !e.user.is_empty() {
                user[if is_user_id(&e.user) { "uid" } else { "name" }] = json!(e.user);
            }
            let mut v = json!({
                "category_uid": 1,
                "category_name": "System Activity",
                "class_uid": 1001,
                "class_name": "File System Activity",
                "activity_id": activity_id,
                "activity_name": activity_name,
                "type_uid": 1001 * 100 + activity_id,
                "type_name": format!("File System Activity: {activity_name}"),
                "time": time_ms,
                "severity_id": severity_id,
                "severity": severity,
                "status_id": if denied(e) { 2 } else { 1 },
                "status": if denied(e) { "Failure" } else { "Success" },
                "disposition_id": if denied(e) { 2 } else { 1 },
                "disposition": if denied(e) { "Blocked" } else { "Allowed" },
                "metadata": ocsf_metadata(r),
                "device": { "hostname": o.host, "type_id": 0 },
                "actor": {
                    "process": {
                        "pid": e.pid,
                        "name": e.process(),
                        "file": { "path": e.image, "name": e.process(), "type_id": 1 },
                        "parent_process": { "pid": e.ppid },
                        "user": user,
                    },
                    "user": user,
                },
                "file": {
                    "path": e.path,
                    "name": name,
                    "parent_folder": dir,
                    "size": e.size,
                    "type_id": 1,
                },
                "policy": {
                    "uid": to_hex(&e.policy.hash),
                    "version": e.policy.generation.to_string(),
                    "name": if e.tag.is_empty() { "fltpolicy" } else { e.tag.as_str() },
                },
                "message": format!("{} {} {}", e.action.name(), e.op_name(), e.path),
                "unmapped": {
                    "rule": e.rule,
                    "line": e.rule.map(|_| e.line),
                    "flags": flags::names(e.flags).collect::<Vec<_>>(),
                },
            });
            if let Some(st) = e.status {
                v["status_code"] = json!(st.to_string());
            }
            Some(v)
        }
        RecordBody::Dropped(d) => Some(json!({
            "category_uid": 0,
            "class_uid": 0,
            "class_name": "Base Event",
            "activity_id": 99,
            "activity_name": "Records Dropped",
            "type_uid": 99,
            "time": time_ms,
            "severity_id": 4,
            "severity": "High",
            "status_id": 2,
            "status": "Failure",
            "status_detail": d.reason.name(),
            "metadata": ocsf_metadata(r),
            "device": { "hostname": o.host, "type_id": 0 },
            "message": drop_message(d),
            "count": d.count,
            "unmapped": { "after_seq": d.after_seq, "since": rfc3339(d.since_ns) },
        })),
        RecordBody::End(_) => None,
    }
}

// ---- CEF ----------------------------------------------------------------

/// A CEF header field: `\` and `|` escaped, no line breaks.
fn cef_header(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace(['\r', '\n'], " ")
}

/// A CEF extension value: `\`, `=` escaped, line breaks as `\n`/`\r`.
pub fn cef_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '=' => out.push_str("\\="),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out
}

/// One record as a CEF line (`None` for end-of-file records).
pub fn record_cef(r: &DecodedRecord, o: Origin<'_>) -> Option<String> {
    let version = cef_header(env!("CARGO_PKG_VERSION"));
    let rt = r.time_ns / 1_000_000;
    let mut ext: Vec<(&str, String)> = vec![("rt", rt.to_string()), ("dvchost", o.host.into())];
    let (class, name, severity) = match &r.body {
        RecordBody::Event(e) => {
            let (_, fname) = dir_and_name(&e.path);
            ext.extend([
                ("act", e.action.name().to_owned()),
                (
                    "outcome",
                    if denied(e) { "failure" } else { "success" }.to_owned(),
                ),
                ("filePath", e.path.clone()),
                ("fname", fname.to_owned()),
                ("fsize", e.size.to_string()),
                ("spid", e.pid.to_string()),
                ("sproc", e.image.clone()),
                ("cn1Label", "seq".to_owned()),
                ("cn1", r.seq.to_string()),
                ("cn2Label", "ppid".to_owned()),
                ("cn2", e.ppid.to_string()),
                ("cs1Label", "rule".to_owned()),
                (
                    "cs1",
                    e.rule
                        .map_or_else(String::new, |n| format!("{n} (line {})", e.line)),
                ),
                ("cs2Label", "tag".to_owned()),
                ("cs2", e.tag.clone()),
                ("cs3Label", "policy".to_owned()),
                (
                    "cs3",
                    format!("{}/{}", to_hex(&e.policy.hash), e.policy.generation),
                ),
            ]);
            if !e.user.is_empty() {
                ext.push((
                    if is_user_id(&e.user) { "suid" } else { "suser" },
                    e.user.clone(),
                ));
            }
            (
                format!("fltpolicy:{}", e.op_name()),
                format!("{} {}", e.action.name(), e.op_name()),
                if denied(e) { 7 } else { 3 },
            )
        }
        RecordBody::Dropped(d) => {
            ext.extend([
                ("cnt", d.count.to_string()),
                ("reason", d.reason.name().to_owned()),
                ("cn1Label", "seq".to_owned()),
                ("cn1", r.seq.to_string()),
                ("cn3Label", "after_seq".to_owned()),
                ("cn3", d.after_seq.to_string()),
                ("msg", drop_message(d)),
            ]);
            (
                "fltpolicy:dropped".to_owned(),
                "records dropped".to_owned(),
                5,
            )
        }
        RecordBody::End(_) => return None,
    };
    let ext: Vec<String> = ext
        .into_iter()
        .map(|(k, v)| format!("{k}={}", cef_value(&v)))
        .collect();
    Some(format!(
        "CEF:0|{}|{}|{version}|{}|{}|{severity}|{}",
        cef_header(VENDOR),
        cef_header(PRODUCT),
        cef_header(&class),
        cef_header(&name),
        ext.join(" ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use fltpolicy_core::record::{DropReason, EndReason, EndRecord};

    fn drop_rec() -> DecodedRecord {
        DecodedRecord {
            file: 0,
            offset: 100,
            seq: 42,
            time_ns: 1_700_000_000_123_456_789,
            body: RecordBody::Dropped(DropRecord {
                seq: 42,
                time_ns: 1_700_000_000_123_456_789,
                since_ns: 1_700_000_000_000_000_000,
                after_seq: 30,
                count: 11,
                reason: DropReason::WriteFailed,
            }),
        }
    }

    const O: Origin<'static> = Origin { host: "h1" };

    #[test]
    fn drops_stay_visible_in_every_siem_format() {
        let r = drop_rec();
        let ecs = record_ecs(&r, O).unwrap();
        assert_eq!(ecs["event"]["kind"], "pipeline_error");
        assert_eq!(ecs["event"]["reason"], "write_failed");
        assert_eq!(ecs["labels"]["fltpolicy_dropped_count"], "11");
        assert_eq!(ecs["event"]["sequence"], 42);
        let ocsf = record_ocsf(&r, O).unwrap();
        assert_eq!(ocsf["class_uid"], 0, "OCSF Base Event");
        assert_eq!(ocsf["count"], 11);
        assert_eq!(ocsf["status_detail"], "write_failed");
        assert_eq!(ocsf["time"], 1_700_000_000_123u64);
        let cef = record_cef(&r, O).unwrap();
        assert!(cef.starts_with("CEF:0|fltpolicy|fltpolicy|"), "{cef}");
        assert!(
            cef.contains("|fltpolicy:dropped|records dropped|5|"),
            "{cef}"
        );
        assert!(
            cef.contains(" cnt=11 ") && cef.contains(" reason=write_failed "),
            "{cef}"
        );
    }

    #[test]
    fn end_records_are_not_exported_to_a_siem() {
        let r = DecodedRecord {
            body: RecordBody::End(EndRecord {
                seq: 1,
                time_ns: 0,
                reason: EndReason::Shutdown,
            }),
            ..drop_rec()
        };
        assert!(record_ecs(&r, O).is_none());
        assert!(record_ocsf(&r, O).is_none());
        assert!(record_cef(&r, O).is_none());
    }

    #[test]
    fn cef_escapes_what_would_split_fields() {
        assert_eq!(cef_value("a=b\\c\nd"), "a\\=b\\\\c\\nd");
        assert_eq!(cef_header("x|y\\z\nw"), "x\\|y\\\\z w");
    }
}
