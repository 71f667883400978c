//! Every condition and every action of a rule, and the default policy, in one table.

use std::collections::BTreeMap;

use carepost_dlp::report::{AttachmentSummary, PartStatus, TextFormat};
use carepost_dlp::{EntityType, Summary, Verdict};
use carepost_model::Address;
use carepost_policy::{Capabilities, Direction, MessageFacts, Method, Policy, PolicyConfig, Step, TlsFallback};

fn summary(verdict: Verdict, entities: &[(EntityType, usize)], incomplete: bool, attachments: &[&str]) -> Summary {
    Summary {
        verdict,
        confidence: 0.9,
        incomplete,
        incomplete_reasons: Vec::new(),
        entities: entities.iter().copied().collect(),
        health_signals: BTreeMap::new(),
        subject_sensitive: false,
        attachments: attachments
            .iter()
            .map(|t| AttachmentSummary {
                content_type: t.to_string(),
                format: TextFormat::Pdf,
                status: PartStatus::Scanned,
            })
            .collect(),
    }
}

fn policy(toml_text: &str) -> Policy {
    #[derive(serde::Deserialize)]
    struct File {
        policy: PolicyConfig,
    }
    let file: File = toml::from_str(toml_text).unwrap_or_else(|e| panic!("{e}"));
    Policy::new(file.policy).unwrap()
}

fn a(s: &str) -> Address {
    Address::parse(s).unwrap()
}

const RULES: &str = r#"
[policy]
compliance_address = "privacy@clinic.example.org"
tls_fallback = "hold"

[policy.groups]
clinicians = ["dr.house@clinic.example.org", "*.cardio.example.org"]
partners = ["lab.example.com", "billing@payer.example.net"]

[[policy.rules]]
name = "direction"
when.direction = "inbound"
then.add_header = { "X-Inbound" = "yes" }

[[policy.rules]]
name = "sender"
when.sender = ["ceo@clinic.example.org"]
then.tag_subject = "[EXEC]"

[[policy.rules]]
name = "sender group"
when.sender_group = ["clinicians"]
then.add_header = { "X-Clinician" = "1" }

[[policy.rules]]
name = "recipient"
when.recipient = ["@insecure.example"]
then.block = "insecure.example does not accept PHI"

[[policy.rules]]
name = "recipient group"
when.recipient_group = ["partners"]
then.method = "tls_verified"

[[policy.rules]]
name = "verdict"
when.verdict = ["phi"]
when.direction = "outbound"
then.add_header = { "X-Classification" = "phi" }

[[policy.rules]]
name = "entity counts"
when.entities = { US_SSN = 3 }
then.quarantine = true
then.notify_compliance = true

[[policy.rules]]
name = "min entities"
when.min_entities = 50
then.notify = ["security@clinic.example.org"]

[[policy.rules]]
name = "incomplete"
when.incomplete = true
then.method = "portal"

[[policy.rules]]
name = "subject marker"
when.subject_contains = ["[secure]", "+encrypt+"]
then.method = "portal"

[[policy.rules]]
name = "attachment"
when.attachment_type = ["application/vnd.ms-excel", "image/*"]
then.method = "pgp"

[[policy.rules]]
name = "size"
when.min_size = 20000000
when.max_size = 30000000
then.tag_subject = "[LARGE]"

[[policy.rules]]
name = "requiretls"
when.require_tls = true
then.method = "smime"

[[policy.rules]]
name = "stop here"
when.recipient = ["stop@example.org"]
stop = true

[[policy.rules]]
name = "after stop"
then.tag_subject = "[NEVER FOR STOP]"
"#;

struct Case {
    name: &'static str,
    direction: Direction,
    sender: &'static str,
    recipient: &'static str,
    subject: &'static str,
    summary: Summary,
    size: u64,
    require_tls: bool,
    expect: fn(&carepost_policy::Decision),
}

#[test]
fn every_condition_and_action() {
    let p = policy(RULES);
    let clean = || summary(Verdict::Clean, &[], false, &[]);
    let cases = vec![
        Case {
            name: "nothing matches: best",
            direction: Direction::Outbound,
            sender: "nurse@clinic.example.org",
            recipient: "pat@example.net",
            subject: "hi",
            summary: clean(),
            size: 100,
            require_tls: false,
            expect: |d| {
                assert_eq!(d.method, Some(Method::Best));
                assert_eq!(d.method_rule, "default");
                assert!(d.require_verified_tls);
                assert!(d.matched_rules.contains(&"after stop".to_string()));
            },
        },
        Case {
            name: "direction",
            direction: Direction::Inbound,
            sender: "x@example.net",
            recipient: "nurse@clinic.example.org",
            subject: "",
            summary: clean(),
            size: 1,
            require_tls: false,
            expect: |d| {
                assert_eq!(d.add_headers.get("X-Inbound").map(String::as_str), Some("yes"));
                assert_eq!(d.method, None, "inbound without a method rule goes by transport");
                assert!(!d.require_verified_tls);
            },
        },
        Case {
            name: "sender",
            direction: Direction::Outbound,
            sender: "CEO@clinic.example.org",
            recipient: "pat@example.net",
            subject: "",
            summary: clean(),
            size: 1,
            require_tls: false,
            expect: |d| assert_eq!(d.tag_subject.as_deref(), Some("[EXEC]")),
        },
        Case {
            name: "sender group (subdomain pattern)",
            direction: Direction::Outbound,
            sender: "a@x.cardio.example.org",
            recipient: "pat@example.net",
            subject: "",
            summary: clean(),
            size: 1,
            require_tls: false,
            expect: |d| assert!(d.add_headers.contains_key("X-Clinician")),
        },
        Case {
            name: "recipient block",
            direction: Direction::Outbound,
            sender: "a@clinic.example.org",
            recipient: "someone@insecure.example",
            subject: "",
            summary: clean(),
            size: 1,
            require_tls: false,
            expect: |d| assert_eq!(d.block.as_deref(), Some("insecure.example does not accept PHI")),
        },
        Case {
            name: "recipient group method",
            direction: Direction::Outbound,
            sender: "a@clinic.example.org",
            recipient: "results@lab.example.com",
            subject: "",
            summary: clean(),
            size: 1,
            require_tls: false,
            expect: |d| {
                assert_eq!(d.method, Some(Method::TlsVerified));
                assert_eq!(d.method_rule, "recipient group");
                assert_eq!(d.plan(Capabilities::default()), vec![Step::TlsVerified, Step::Hold]);
            },
        },
        Case {
            name: "verdict",
            direction: Direction::Outbound,
            sender: "a@clinic.example.org",
            recipient: "pat@example.net",
            subject: "",
            summary: summary(Verdict::Phi, &[(EntityType::Mrn, 1)], false, &[]),
            size: 1,
            require_tls: false,
            expect: |d| assert_eq!(d.add_headers.get("X-Classification").map(String::as_str), Some("phi")),
        },
        Case {
            name: "entity count reached: quarantine and compliance notice",
            direction: Direction::Outbound,
            sender: "a@clinic.example.org",
            recipient: "pat@example.net",
            subject: "",
            summary: summary(Verdict::Pii, &[(EntityType::UsSsn, 3)], false, &[]),
            size: 1,
            require_tls: false,
            expect: |d| {
                assert!(d.quarantine);
                assert_eq!(d.notify, vec!["privacy@clinic.example.org".to_string()]);
            },
        },
        Case {
            name: "entity count not reached",
            direction: Direction::Outbound,
            sender: "a@clinic.example.org",
            recipient: "pat@example.net",
            subject: "",
            summary: summary(Verdict::Pii, &[(EntityType::UsSsn, 2)], false, &[]),
            size: 1,
            require_tls: false,
            expect: |d| assert!(!d.quarantine),
        },
        Case {
            name: "min entities",
            direction: Direction::Outbound,
            sender: "a@clinic.example.org",
            recipient: "pat@example.net",
            subject: "",
            summary: summary(Verdict::Pii, &[(EntityType::Phone, 30), (EntityType::EmailAddress, 20)], false, &[]),
            size: 1,
            require_tls: false,
            expect: |d| assert_eq!(d.notify, vec!["security@clinic.example.org".to_string()]),
        },
        Case {
            name: "incomplete scan",
            direction: Direction::Outbound,
            sender: "a@clinic.example.org",
            recipient: "pat@example.net",
            subject: "",
            summary: summary(Verdict::Clean, &[], true, &[]),
            size: 1,
            require_tls: false,
            expect: |d| {
                assert_eq!(d.method, Some(Method::Portal));
                assert_eq!(d.plan(Capabilities::default()), vec![Step::Portal]);
            },
        },
        Case {
            name: "subject marker",
            direction: Direction::Outbound,
            sender: "a@clinic.example.org",
            recipient: "pat@example.net",
            subject: "Re: results +ENCRYPT+",
            summary: clean(),
            size: 1,
            require_tls: false,
            expect: |d| assert_eq!(d.method_rule, "subject marker"),
        },
        Case {
            name: "attachment type wildcard",
            direction: Direction::Outbound,
            sender: "a@clinic.example.org",
            recipient: "pat@example.net",
            subject: "",
            summary: summary(Verdict::Clean, &[], false, &["image/png; name=x"]),
            size: 1,
            require_tls: false,
            expect: |d| {
                assert_eq!(d.method, Some(Method::Pgp));
                assert_eq!(d.plan(Capabilities { pgp_key: true, ..Default::default() }), vec![Step::Pgp]);
                assert_eq!(d.plan(Capabilities::default()), vec![Step::Portal], "no key: portal, never less");
            },
        },
        Case {
            name: "size window",
            direction: Direction::Outbound,
            sender: "a@clinic.example.org",
            recipient: "pat@example.net",
            subject: "",
            summary: clean(),
            size: 25_000_000,
            require_tls: false,
            expect: |d| assert_eq!(d.tag_subject.as_deref(), Some("[LARGE]")),
        },
        Case {
            name: "requiretls",
            direction: Direction::Outbound,
            sender: "a@clinic.example.org",
            recipient: "pat@example.net",
            subject: "",
            summary: clean(),
            size: 1,
            require_tls: true,
            expect: |d| {
                assert_eq!(d.method, Some(Method::Smime));
                assert!(d.require_verified_tls);
                assert_eq!(d.plan(Capabilities { smime_certificate: true, ..Default::default() }), vec![Step::Smime]);
            },
        },
        Case {
            name: "stop ends evaluation",
            direction: Direction::Outbound,
            sender: "a@clinic.example.org",
            recipient: "stop@example.org",
            subject: "",
            summary: clean(),
            size: 1,
            require_tls: false,
            expect: |d| {
                assert_eq!(d.matched_rules.last().map(String::as_str), Some("stop here"));
                assert_eq!(d.tag_subject, None);
            },
        },
    ];
    for case in cases {
        let sender = a(case.sender);
        let facts = MessageFacts {
            direction: case.direction,
            sender: Some(&sender),
            subject: case.subject,
            summary: &case.summary,
            size: case.size,
            require_tls: case.require_tls,
        };
        let decision = p.decide(&facts, &a(case.recipient));
        let json = decision.to_json();
        assert_eq!(carepost_policy::Decision::from_json(&json).as_ref(), Some(&decision), "{}", case.name);
        assert!(!json.contains("pat@example.net"), "{}: decision JSON must not name the recipient", case.name);
        let shown = format!("case {:?}", case.name);
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (case.expect)(&decision)))
            .unwrap_or_else(|_| panic!("{shown} failed: {decision:#?}"));
    }
}

#[test]
fn default_policy_protects_every_outbound_message() {
    let p = Policy::new(PolicyConfig::default()).unwrap();
    let s = summary(Verdict::Phi, &[(EntityType::UsSsn, 1)], false, &[]);
    let sender = a("a@clinic.example.org");
    let facts = MessageFacts {
        direction: Direction::Outbound,
        sender: Some(&sender),
        subject: "",
        summary: &s,
        size: 10,
        require_tls: false,
    };
    let d = p.decide(&facts, &a("pat@example.net"));
    assert_eq!(d.method, Some(Method::Best));
    assert_eq!(
        d.plan(Capabilities::default()),
        vec![Step::TlsVerified, Step::Portal],
        "no key, no verified TLS: portal"
    );
    assert_eq!(d.plan(Capabilities { smime_certificate: true, pgp_key: true }), vec![Step::Smime, Step::Portal]);
    assert_eq!(d.plan(Capabilities { pgp_key: true, ..Default::default() }), vec![Step::Pgp, Step::Portal]);
    assert_eq!(d.tls_fallback, TlsFallback::Portal);
    // Every plan of every method ends protected: no step sends without verified TLS or encryption.
    for method in [Method::TlsVerified, Method::Smime, Method::Pgp, Method::Portal, Method::Best] {
        for caps in [Capabilities::default(), Capabilities { smime_certificate: true, pgp_key: true }] {
            let d = carepost_policy::Decision { method: Some(method), ..d.clone() };
            assert!(!d.plan(caps).contains(&Step::Transport), "{method:?} {caps:?}");
        }
    }
}

#[test]
fn a_notice_shows_the_real_subject_only_when_a_rule_allows_it_and_it_is_not_sensitive() {
    let p = policy(
        r#"
[[policy.rules]]
name = "appointment reminders name their subject"
when.sender = ["reminders@clinic.example.org"]
then.notice_subject = "original"
then.method = "portal"

[[policy.rules]]
name = "everything else is neutral"
then.notice_subject = "neutral"
"#,
    );
    let reminders = a("reminders@clinic.example.org");
    let doctor = a("dr@clinic.example.org");
    let decide = |sender: &Address, subject_sensitive: bool| {
        let s = Summary { subject_sensitive, ..summary(Verdict::Phi, &[(EntityType::PersonName, 1)], false, &[]) };
        let facts = MessageFacts {
            direction: Direction::Outbound,
            sender: Some(sender),
            subject: "",
            summary: &s,
            size: 10,
            require_tls: false,
        };
        p.decide(&facts, &a("pat@example.net")).reveal_subject
    };
    assert!(decide(&reminders, false), "the first rule naming a notice subject decides");
    assert!(!decide(&reminders, true), "a sensitive subject is never shown in the notice");
    assert!(!decide(&doctor, false), "neutral by rule");
    let default = Policy::new(PolicyConfig::default()).unwrap();
    let s = summary(Verdict::Clean, &[], false, &[]);
    let facts = MessageFacts {
        direction: Direction::Outbound,
        sender: Some(&reminders),
        subject: "",
        summary: &s,
        size: 10,
        require_tls: false,
    };
    assert!(!default.decide(&facts, &a("pat@example.net")).reveal_subject, "neutral by default");
    let refused = toml::from_str::<toml::Value>("[[policy.rules]]\nname = \"x\"\nthen.notice_subject = \"real\"\n")
        .unwrap()
        .get("policy")
        .cloned()
        .unwrap()
        .try_into::<PolicyConfig>();
    assert!(refused.unwrap_err().to_string().contains("neutral"), "an unknown value is refused, naming the choices");
}

#[test]
fn invalid_policies_are_refused_with_rule_and_key() {
    #[derive(serde::Deserialize, Debug)]
    struct File {
        #[allow(dead_code)]
        policy: PolicyConfig,
    }
    let parse = |t: &str| toml::from_str::<File>(t).map(|f| f.policy);
    let e = parse("[[policy.rules]]\nname = \"x\"\nwhen.entities = { US_SNN = 1 }\n").unwrap_err().to_string();
    assert!(e.contains("'US_SNN' is not an entity type"), "{e}");
    let e = parse("[[policy.rules]]\nname = \"x\"\nthen.method = \"carrier-pigeon\"\n").unwrap_err().to_string();
    assert!(e.contains("carrier-pigeon"), "{e}");
    let e = parse("[[policy.rules]]\nname = \"x\"\nwhen.colour = \"red\"\n").unwrap_err().to_string();
    assert!(e.contains("unknown field `colour`"), "{e}");
    let e = parse("[[policy.rules]]\nname = \"x\"\nwhen.recipient = [\"not an address\"]\n").unwrap_err().to_string();
    assert!(e.contains("not an address"), "{e}");

    let check = |t: &str| Policy::new(parse(t).unwrap()).unwrap_err().to_string();
    assert_eq!(
        check("[[policy.rules]]\nname = \"r\"\nwhen.sender_group = [\"nobody\"]\n"),
        "policy.rules[0] \"r\": when.sender_group: group 'nobody' is not defined in [policy.groups]"
    );
    assert!(
        check("[[policy.rules]]\nname = \"r\"\n[[policy.rules]]\nname = \"r\"\n").contains("two rules have this name")
    );
    assert!(
        check("[[policy.rules]]\nname = \"r\"\nthen.add_header = { \"Bad Name\" = \"v\" }\n")
            .contains("not a header field name")
    );
    assert!(
        check("[[policy.rules]]\nname = \"r\"\nthen.notify_compliance = true\n")
            .contains("compliance_address is not set")
    );
    assert!(check("[[policy.rules]]\nname = \"r\"\nwhen.min_size = 5\nwhen.max_size = 1\n").contains("above max_size"));
}
