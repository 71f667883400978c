//! Command lines into commands, with smtp-proto doing the RFC 5321 grammar.
//!
//! The line reader has already checked that the line ends in CRLF and holds no other CR or
//! LF, so the parser only ever sees one well-terminated line. Parameters carepost does not
//! offer in its EHLO reply are refused with 555, as RFC 5321 section 4.1.1.11 asks.

use carepost_model::{Address, BodyType, DsnNotify, DsnReturn, Recipient};
use smtp_proto::{
    AUTH_LOGIN, AUTH_PLAIN, MAIL_BODY_8BITMIME, MAIL_BODY_BINARYMIME, MAIL_BY_NOTIFY, MAIL_BY_RETURN, MAIL_BY_TRACE,
    MAIL_CONPERM, MAIL_REQUIRETLS, MAIL_RET_FULL, MAIL_RET_HDRS, MAIL_SMTPUTF8, RCPT_CONNEG, RCPT_NOTIFY_DELAY,
    RCPT_NOTIFY_FAILURE, RCPT_NOTIFY_NEVER, RCPT_NOTIFY_SUCCESS, RCPT_RRVS_CONTINUE, RCPT_RRVS_REJECT, Request,
};

use crate::reply::Reply;

/// SASL mechanisms carepost offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    Plain,
    Login,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Ehlo(String),
    Helo(String),
    Mail(MailParams),
    Rcpt(Recipient),
    Data,
    Bdat {
        size: u64,
        last: bool,
    },
    /// `initial` is the initial response as sent (base64, or `=` for empty).
    Auth {
        mechanism: Option<Mechanism>,
        initial: Option<String>,
    },
    StartTls,
    Rset,
    Noop,
    Vrfy,
    Expn,
    Help,
    Quit,
    /// A command of the protocol that carepost does not implement (ETRN, ATRN, BURL, LHLO).
    NotImplemented,
}

/// MAIL FROM and its parameters.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MailParams {
    /// `None` is the null reverse path.
    pub sender: Option<Address>,
    /// SIZE= as declared, if any.
    pub size: Option<u64>,
    pub body: BodyType,
    pub smtputf8: bool,
    pub require_tls: bool,
    pub ret: Option<DsnReturn>,
    pub envid: Option<String>,
    /// Whether any ESMTP parameter was given (a HELO session may not use them).
    pub extended: bool,
}

fn unsupported(what: &str) -> Reply {
    Reply::new(555, "5.5.4", format!("Unsupported option: {what}"))
}

fn needs_utf8() -> Reply {
    Reply::new(553, "5.6.7", "Must declare SMTPUTF8 to send unicode address")
}

/// Encodes an ORCPT address as xtext (RFC 3461 section 4), for keeping it as the client
/// sent it: `rfc822;` then the address with `+`, `=` and non-printables as `+HH`.
fn xtext(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 8);
    for b in value.bytes() {
        if (b'!'..=b'~').contains(&b) && b != b'+' && b != b'=' {
            out.push(b as char);
        } else {
            out.push_str(&format!("+{b:02X}"));
        }
    }
    out
}

fn syntax_reply(error: smtp_proto::Error) -> Reply {
    use smtp_proto::Error as E;
    match error {
        E::UnknownCommand => Reply::new(500, "5.5.2", "Error: command not recognized"),
        E::InvalidSenderAddress => Reply::new(501, "5.1.7", "Bad sender address syntax"),
        E::InvalidRecipientAddress => Reply::new(501, "5.1.3", "Bad recipient address syntax"),
        E::SyntaxError { syntax } => Reply::new(501, "5.5.4", format!("Syntax: {syntax}")),
        E::InvalidParameter { param } => Reply::new(501, "5.5.4", format!("Invalid {param} parameter")),
        E::UnsupportedParameter { param } => unsupported(&param),
        E::ResponseTooLong => Reply::new(500, "5.5.2", "Error: line too long"),
        E::NeedsMoreData { .. } | E::InvalidResponse { .. } => Reply::new(500, "5.5.2", "Error: bad syntax"),
    }
}

/// Parses one command line (CRLF included). Never panics, whatever the bytes.
pub fn parse(line: &[u8]) -> Result<Command, Reply> {
    let request = Request::parse(&mut line.iter()).map_err(syntax_reply)?;
    Ok(match request {
        Request::Ehlo { host } => Command::Ehlo(host.into_owned()),
        Request::Helo { host } => Command::Helo(host.into_owned()),
        Request::Mail { from } => Command::Mail(mail_params(from)?),
        Request::Rcpt { to } => Command::Rcpt(recipient(to)?),
        Request::Data => Command::Data,
        Request::Bdat { chunk_size, is_last } => Command::Bdat { size: chunk_size as u64, last: is_last },
        Request::Auth { mechanism, initial_response } => Command::Auth {
            mechanism: match mechanism {
                AUTH_PLAIN => Some(Mechanism::Plain),
                AUTH_LOGIN => Some(Mechanism::Login),
                _ => None,
            },
            initial: (!initial_response.is_empty()).then(|| initial_response.into_owned()),
        },
        Request::StartTls => Command::StartTls,
        Request::Rset => Command::Rset,
        Request::Noop { .. } => Command::Noop,
        Request::Vrfy { .. } => Command::Vrfy,
        Request::Expn { .. } => Command::Expn,
        Request::Help { .. } => Command::Help,
        Request::Quit => Command::Quit,
        Request::Lhlo { .. } | Request::Etrn { .. } | Request::Atrn { .. } | Request::Burl { .. } => {
            Command::NotImplemented
        }
    })
}

fn mail_params(from: smtp_proto::MailFrom<std::borrow::Cow<'_, str>>) -> Result<MailParams, Reply> {
    if from.trans_id.is_some() || from.by != 0 || from.solicit.is_some() || from.mtrk.is_some() {
        return Err(unsupported("MAIL FROM parameter"));
    }
    if from.hold_for != 0 || from.hold_until != 0 || from.mt_priority != 0 {
        return Err(unsupported("MAIL FROM parameter"));
    }
    if from.flags & (MAIL_CONPERM | MAIL_BY_NOTIFY | MAIL_BY_RETURN | MAIL_BY_TRACE | MAIL_BODY_BINARYMIME) != 0 {
        return Err(unsupported("MAIL FROM parameter"));
    }
    let smtputf8 = from.flags & MAIL_SMTPUTF8 != 0;
    let sender = if from.address.is_empty() {
        None
    } else {
        let address =
            Address::parse(&from.address).map_err(|_| Reply::new(501, "5.1.7", "Bad sender address syntax"))?;
        if address.is_utf8() && !smtputf8 {
            return Err(needs_utf8());
        }
        Some(address)
    };
    let body = if from.flags & MAIL_BODY_8BITMIME != 0 { BodyType::EightBitMime } else { BodyType::SevenBit };
    let ret = if from.flags & MAIL_RET_FULL != 0 {
        Some(DsnReturn::Full)
    } else if from.flags & MAIL_RET_HDRS != 0 {
        Some(DsnReturn::Headers)
    } else {
        None
    };
    let size = (from.size != 0).then_some(from.size as u64);
    let extended = from.flags != 0 || size.is_some() || from.env_id.is_some() || from.auth.is_some();
    Ok(MailParams {
        sender,
        size,
        body,
        smtputf8,
        require_tls: from.flags & MAIL_REQUIRETLS != 0,
        ret,
        envid: from.env_id.map(|e| e.into_owned()),
        extended,
    })
}

fn recipient(to: smtp_proto::RcptTo<std::borrow::Cow<'_, str>>) -> Result<Recipient, Reply> {
    if to.rrvs != 0 || to.flags & (RCPT_CONNEG | RCPT_RRVS_REJECT | RCPT_RRVS_CONTINUE) != 0 {
        return Err(unsupported("RCPT TO parameter"));
    }
    if to.address.is_empty() {
        return Err(Reply::new(501, "5.1.3", "Bad recipient address syntax"));
    }
    let address = Address::parse(&to.address).map_err(|_| Reply::new(501, "5.1.3", "Bad recipient address syntax"))?;
    let notify_flags = RCPT_NOTIFY_SUCCESS | RCPT_NOTIFY_FAILURE | RCPT_NOTIFY_DELAY | RCPT_NOTIFY_NEVER;
    let notify = (to.flags & notify_flags != 0).then_some(DsnNotify {
        never: to.flags & RCPT_NOTIFY_NEVER != 0,
        success: to.flags & RCPT_NOTIFY_SUCCESS != 0,
        failure: to.flags & RCPT_NOTIFY_FAILURE != 0,
        delay: to.flags & RCPT_NOTIFY_DELAY != 0,
    });
    if notify.is_some_and(|n| n.never && (n.success || n.failure || n.delay)) {
        return Err(Reply::new(501, "5.5.4", "Invalid NOTIFY parameter: NEVER excludes the others"));
    }
    Ok(Recipient { address, notify, orcpt: to.orcpt.map(|o| format!("rfc822;{}", xtext(&o))) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_mail_with_dsn_utf8_and_requiretls() {
        let Command::Mail(m) =
            parse(b"MAIL FROM:<jane@clinic.example> SIZE=1000 BODY=8BITMIME RET=HDRS ENVID=abc+2Bd REQUIRETLS\r\n")
                .unwrap()
        else {
            panic!()
        };
        assert_eq!(m.sender.unwrap().as_str(), "jane@clinic.example");
        assert_eq!(m.size, Some(1000));
        assert_eq!(m.body, BodyType::EightBitMime);
        assert_eq!(m.ret, Some(DsnReturn::Headers));
        assert_eq!(m.envid.as_deref(), Some("abc+d"));
        assert!(m.require_tls && m.extended && !m.smtputf8);
        let Command::Mail(m) = parse(b"MAIL FROM:<>\r\n").unwrap() else { panic!() };
        assert!(m.sender.is_none() && !m.extended);
        assert_eq!(parse("MAIL FROM:<θσερ@παράδειγμα.δοκιμή>\r\n".as_bytes()).unwrap_err().code, 553);
        assert!(matches!(parse("MAIL FROM:<θσερ@παράδειγμα.δοκιμή> SMTPUTF8\r\n".as_bytes()), Ok(Command::Mail(_))));
        assert_eq!(parse(b"MAIL FROM:<a@b.example> HOLDFOR=10\r\n").unwrap_err().code, 555);
        assert_eq!(parse(b"MAIL FROM:<a@b.example> BODY=BINARYMIME\r\n").unwrap_err().code, 555);
        assert_eq!(parse(b"MAIL FROM:<not an address>\r\n").unwrap_err().code, 501);
    }

    #[test]
    fn parses_rcpt_with_notify_and_orcpt() {
        let Command::Rcpt(r) =
            parse(b"RCPT TO:<pat@example.org> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;pat+2B1@example.org\r\n").unwrap()
        else {
            panic!()
        };
        assert_eq!(r.address.as_str(), "pat@example.org");
        assert_eq!(r.notify, Some(DsnNotify { never: false, success: true, failure: true, delay: false }));
        assert_eq!(r.orcpt.as_deref(), Some("rfc822;pat+2B1@example.org"));
        assert_eq!(parse(b"RCPT TO:<a@b.example> NOTIFY=NEVER,SUCCESS\r\n").unwrap_err().code, 501);
        assert_eq!(parse(b"RCPT TO:<>\r\n").unwrap_err().code, 501);
    }

    #[test]
    fn other_commands() {
        assert_eq!(parse(b"EHLO client.example\r\n").unwrap(), Command::Ehlo("client.example".into()));
        assert_eq!(parse(b"bdat 100 last\r\n").unwrap(), Command::Bdat { size: 100, last: true });
        assert_eq!(
            parse(b"AUTH PLAIN AGEAYg==\r\n").unwrap(),
            Command::Auth { mechanism: Some(Mechanism::Plain), initial: Some("AGEAYg==".into()) }
        );
        assert_eq!(
            parse(b"AUTH LOGIN\r\n").unwrap(),
            Command::Auth { mechanism: Some(Mechanism::Login), initial: None }
        );
        assert!(matches!(parse(b"AUTH CRAM-MD5\r\n"), Ok(Command::Auth { mechanism: None, .. })));
        assert_eq!(parse(b"ETRN example.org\r\n").unwrap(), Command::NotImplemented);
        assert_eq!(parse(b"FOO\r\n").unwrap_err().code, 500);
        assert_eq!(parse(b"GET / HTTP/1.1\r\n").unwrap_err().code, 500);
        assert_eq!(parse(b"EHLO\r\n").unwrap_err().code, 501);
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(line in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = parse(&line);
            let mut terminated = line.clone();
            terminated.extend_from_slice(b"\r\n");
            let _ = parse(&terminated);
        }

        #[test]
        fn arbitrary_commands_never_panic(verb in "(MAIL FROM:|RCPT TO:|EHLO |BDAT |AUTH |HELO |VRFY )", rest in "\\PC{0,200}") {
            let _ = parse(format!("{verb}{rest}\r\n").as_bytes());
        }
    }
}
