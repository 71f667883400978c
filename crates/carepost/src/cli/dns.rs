//! `carepost dns records DOMAIN`: every DNS record a sending domain should publish.

use std::process::ExitCode;

use carepost::{Access, Installation};
use carepost_delivery::dkim;
use carepost_model::Timestamp;
use clap::Subcommand;

use super::Global;

#[derive(Subcommand, Debug)]
pub enum DnsCommand {
    /// Print MX, SPF, DKIM, DMARC, MTA-STS (TXT and policy file) and TLS-RPT records.
    Records { domain: String },
}

pub async fn run(global: &Global, command: DnsCommand) -> anyhow::Result<ExitCode> {
    let (config, _) = global.load_config()?;
    let DnsCommand::Records { domain } = command;
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    anyhow::ensure!(
        carepost_model::Address::parse(&format!("postmaster@{domain}")).is_ok() && !domain.starts_with('['),
        "'{domain}' is not a domain name"
    );
    let host = config.hostname.clone();
    let reports = format!("{}@{domain}", config.delivery.report_local_part);
    let install = Installation::open(config, Access::Shared).await?;
    let keys = install.store.dkim_keys(Some(&domain)).await?;
    install.store.close().await;
    print!("{}", records(&domain, &host, &reports, &keys));
    Ok(ExitCode::SUCCESS)
}

/// TXT strings are at most 255 octets each; longer values are split into several.
fn txt(value: &str) -> String {
    let parts: Vec<String> =
        value.as_bytes().chunks(255).map(|c| format!("\"{}\"", String::from_utf8_lossy(c))).collect();
    parts.join(" ")
}

pub fn records(domain: &str, host: &str, reports: &str, keys: &[carepost_store::dkim_keys::DkimKeyRow]) -> String {
    let policy = format!("version: STSv1\nmode: enforce\nmx: {host}\nmax_age: 604800\n");
    // The id changes exactly when the policy does (RFC 8461 section 3.1).
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, policy.as_bytes());
    let id: String = digest.as_ref()[..8].iter().map(|b| format!("{b:02x}")).collect();
    let mut out = String::new();
    out.push_str(&format!("; DNS records for {domain}, mail sent through {host}\n\n"));
    out.push_str("; Mail for the domain is received by carepost\n");
    out.push_str(&format!("{domain}. IN MX 10 {host}.\n\n"));
    out.push_str("; SPF: only this host sends for the domain\n");
    out.push_str(&format!("{domain}. IN TXT {}\n\n", txt(&format!("v=spf1 mx a:{host} -all"))));
    out.push_str("; DKIM: every published key (carepost dkim list)\n");
    let published = dkim::published(keys, Timestamp::now());
    if published.is_empty() {
        out.push_str(&format!("; no DKIM keys yet: run `carepost dkim generate {domain}`\n"));
    }
    for k in published {
        out.push_str(&format!("{}._domainkey.{domain}. IN TXT {}\n", k.selector, txt(&dkim::txt_record(k))));
    }
    out.push('\n');
    out.push_str("; DMARC: reject what fails, aggregate reports to the domain's mailbox\n");
    out.push_str(&format!(
        "_dmarc.{domain}. IN TXT {}\n\n",
        txt(&format!("v=DMARC1; p=reject; adkim=s; aspf=r; rua=mailto:{reports}"))
    ));
    out.push_str("; MTA-STS (RFC 8461): senders must use verified TLS to this domain\n");
    out.push_str(&format!("_mta-sts.{domain}. IN TXT {}\n", txt(&format!("v=STSv1; id={id}"))));
    out.push_str(&format!("; and serve this file at https://mta-sts.{domain}/.well-known/mta-sts.txt (text/plain):\n"));
    for line in policy.lines() {
        out.push_str(&format!(";   {line}\n"));
    }
    out.push('\n');
    out.push_str("; TLS-RPT (RFC 8460): where senders report TLS failures\n");
    out.push_str(&format!("_smtp._tls.{domain}. IN TXT {}\n", txt(&format!("v=TLSRPTv1; rua=mailto:{reports}"))));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_every_record_and_splits_long_txt() {
        let key = carepost_store::dkim_keys::DkimKeyRow {
            id: "k".into(),
            tenant: "default".into(),
            domain: "clinic.example".into(),
            selector: "cp20260101-rsa".into(),
            algorithm: "rsa".into(),
            public_key: vec![7; 294],
            private_key: vec![],
            created_at: 0,
            active_from: 0,
            retired_at: None,
        };
        let text = records("clinic.example", "mx.clinic.example", "postmaster@clinic.example", &[key]);
        for needle in [
            "clinic.example. IN MX 10 mx.clinic.example.",
            "\"v=spf1 mx a:mx.clinic.example -all\"",
            "cp20260101-rsa._domainkey.clinic.example. IN TXT \"v=DKIM1; k=rsa; p=",
            "_dmarc.clinic.example. IN TXT \"v=DMARC1; p=reject; adkim=s; aspf=r; rua=mailto:postmaster@clinic.example\"",
            "_mta-sts.clinic.example. IN TXT \"v=STSv1; id=",
            ";   mode: enforce",
            ";   mx: mx.clinic.example",
            "_smtp._tls.clinic.example. IN TXT \"v=TLSRPTv1; rua=mailto:postmaster@clinic.example\"",
        ] {
            assert!(text.contains(needle), "missing {needle}\n{text}");
        }
        let dkim_line = text.lines().find(|l| l.contains("_domainkey")).unwrap();
        assert!(dkim_line.contains("\" \""), "a 2048-bit key needs two TXT strings: {dkim_line}");
        assert!(
            carepost_delivery::tls_policy::mta_sts::parse_policy(
                &text.lines().filter_map(|l| l.strip_prefix(";   ")).collect::<Vec<_>>().join("\n")
            )
            .is_ok()
        );
    }
}
