//! Intake: inspection and policy before the spool.

use std::sync::Arc;

use bytes::Bytes;
use carepost_intake::{Intake, IntakeError, IntakeSettings};
use carepost_model::{Address, Arrival, Envelope, Recipient, Source, TenantId};
use carepost_policy::{Policy, PolicyConfig};

async fn intake(dir: &std::path::Path, policy_toml: &str) -> Intake {
    #[derive(serde::Deserialize)]
    struct File {
        #[serde(default)]
        policy: PolicyConfig,
    }
    let file: File = toml::from_str(policy_toml).unwrap();
    Intake::new(
        carepost_spool::testing::spool(dir).await,
        Arc::new(Policy::new(file.policy).unwrap()),
        IntakeSettings {
            local_domains: vec!["clinic.example.org".into()],
            limits: Default::default(),
            notices_from: Address::parse("postmaster@clinic.example.org").unwrap(),
            learning: None,
        },
    )
}

fn envelope(to: &[&str]) -> Envelope {
    Envelope {
        mail_from: Some(Address::parse("nurse@clinic.example.org").unwrap()),
        recipients: to.iter().map(|a| Recipient::new(Address::parse(a).unwrap())).collect(),
        dsn_ret: None,
        dsn_envid: None,
        require_tls: false,
        smtputf8: false,
        body: Default::default(),
    }
}

fn arrival() -> Arrival {
    Arrival {
        source: Source::Submission,
        client_ip: Some("127.0.0.1".parse().unwrap()),
        helo: None,
        authenticated_as: Some("nurse".into()),
        tls: None,
        sender_auth: None,
    }
}

const PHI: &str = "From: nurse@clinic.example.org\r\nTo: pat@example.net\r\nSubject: Lab results\r\nMessage-ID: <r1@clinic.example.org>\r\n\r\nPatient Jane Roe, DOB 04/12/1961, SSN 512-48-3391, MRN 00482913.\r\nDiagnosis: type 2 diabetes mellitus (E11.9). HbA1c 8.1%.\r\n";

#[tokio::test]
async fn phi_is_decided_per_recipient_quarantined_noticed_and_audited() {
    let dir = tempfile::tempdir().unwrap();
    let intake = intake(
        dir.path(),
        r#"
[policy]
compliance_address = "privacy@clinic.example.org"
[[policy.rules]]
name = "review SSNs"
when.direction = "outbound"
when.entities = { US_SSN = 1 }
then.quarantine = true
then.notify_compliance = true
"#,
    )
    .await;
    let accepted = intake
        .submit(
            TenantId::default(),
            envelope(&["pat@example.net", "dr@clinic.example.org"]),
            arrival(),
            Bytes::from_static(PHI.as_bytes()),
        )
        .await
        .unwrap();
    assert_eq!(accepted.inspection.summary.verdict.as_str(), "phi");
    let outbound = &accepted.inspection.decisions[0];
    assert!(outbound.quarantine);
    assert_eq!(outbound.method.map(|m| m.as_str()), Some("best"));
    let inbound = &accepted.inspection.decisions[1];
    assert!(!inbound.quarantine, "the rule is for outbound mail");
    assert_eq!(inbound.method, None);

    let spool = intake.spool();
    let opened = spool.open(&accepted.id.to_string()).await.unwrap();
    assert_eq!(opened.recipients[0].row.state, "quarantined");
    assert_eq!(opened.recipients[1].row.state, "queued");
    let inspection = opened.row.inspection.clone().unwrap();
    assert!(inspection.contains("\"verdict\":\"phi\"") && inspection.contains("US_SSN"));
    assert!(!inspection.contains("512-48-3391") && !inspection.contains("Jane"), "{inspection}");

    // The compliance notice is queued and names no content.
    let active = spool.store().messages_in_state("active", 10).await.unwrap();
    assert_eq!(active.len(), 2);
    let notice = active.iter().find(|m| m.source == "system").unwrap();
    let notice = spool.open(&notice.id).await.unwrap();
    assert_eq!(notice.envelope.recipients[0].address.as_str(), "privacy@clinic.example.org");
    let body = String::from_utf8(spool.body(&notice).await.unwrap().to_vec()).unwrap();
    assert!(body.contains(&accepted.id.to_string()) && body.contains("review SSNs"), "{body}");
    for secret in ["512-48-3391", "Jane", "Lab results", "pat@example.net", "diabetes"] {
        assert!(!body.contains(secret), "notice leaks {secret}");
    }

    let mut export = Vec::new();
    spool.audit().export(None, carepost_audit::ExportFormat::JsonLines, "h", &mut export).await.unwrap();
    let export = String::from_utf8(export).unwrap();
    assert!(export.contains("\"verdict\":\"phi\"") && export.contains("\"rules\":\"review SSNs\""), "{export}");
    assert!(!export.contains("512-48-3391"));
}

#[tokio::test]
async fn blocked_messages_are_refused_and_nothing_is_queued() {
    let dir = tempfile::tempdir().unwrap();
    let intake = intake(
        dir.path(),
        r#"
[[policy.rules]]
name = "no PHI to free mail"
when.recipient = ["@freemail.example"]
when.verdict = ["phi"]
then.block = "PHI may not be sent to freemail.example"
"#,
    )
    .await;
    let e = intake
        .submit(
            TenantId::default(),
            envelope(&["pat@example.net", "pat@freemail.example"]),
            arrival(),
            Bytes::from_static(PHI.as_bytes()),
        )
        .await
        .unwrap_err();
    assert!(matches!(&e, IntakeError::Blocked(t) if t == "PHI may not be sent to freemail.example"), "{e}");
    assert!(intake.spool().store().messages_in_state("active", 10).await.unwrap().is_empty());
    // A clean message to the same place goes through.
    let clean = "Subject: lunch\r\n\r\nSee you at noon.\r\n";
    intake
        .submit(
            TenantId::default(),
            envelope(&["pat@freemail.example"]),
            arrival(),
            Bytes::from_static(clean.as_bytes()),
        )
        .await
        .unwrap();
}
