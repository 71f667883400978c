//! The notice a staff member gets after signing in from a client address their account
//! never used: when, from which address, and which browser, so that a stolen password shows
//! up in the owner's mailbox. It carries no PHI. Which addresses are new is the identity
//! room's to know; this module only writes and queues the notice.

use carepost_audit::Outcome;
use carepost_identity::{Account, AccountRef};
use carepost_model::Timestamp;

use super::audit;
use crate::error::WebError;
use crate::{ClientIp, WebState};

/// Mails the notice of a sign-in the identity room found to come from a new address (when
/// `[staff] new_ip_notice` is on). A notice that cannot be queued is audited and logged; the
/// sign-in itself stands.
pub async fn after_signin(state: &WebState, ip: ClientIp, account: &Account, user_agent: &str) {
    if !state.staff.new_ip_notice {
        return;
    }
    let who = AccountRef::staff(account);
    let (actor, target) = (who.actor(), who.target());
    let Some(to) = account.addresses.first() else {
        let details = [("reason", "the account has no address".into())];
        audit(state, ip, &actor, "staff.notice.new_ip", &target, Outcome::Denied, &details).await;
        return;
    };
    let outcome = match queue(state, ip, account, to, user_agent).await {
        Ok(()) => Outcome::Success,
        Err(e) => {
            tracing::error!(error = %e, "cannot queue a new-address sign-in notice");
            Outcome::Failure
        }
    };
    audit(state, ip, &actor, "staff.notice.new_ip", &target, outcome, &[]).await;
}

/// A short, safe description of a browser: its family and system, never the raw header.
pub fn browser_summary(user_agent: &str) -> String {
    let family =
        [("Edg/", "Edge"), ("Firefox/", "Firefox"), ("Chrome/", "Chrome"), ("Safari/", "Safari"), ("curl/", "curl")]
            .into_iter()
            .find(|(token, _)| user_agent.contains(token))
            .map_or("an unknown browser", |(_, name)| name);
    let system = [
        ("Android", "Android"),
        ("iPhone", "iOS"),
        ("iPad", "iPadOS"),
        ("Windows", "Windows"),
        ("Mac OS X", "macOS"),
        ("Linux", "Linux"),
    ]
    .into_iter()
    .find(|(token, _)| user_agent.contains(token))
    .map(|(_, name)| name);
    match system {
        Some(system) => format!("{family} on {system}"),
        None => family.to_owned(),
    }
}

async fn queue(
    state: &WebState,
    ip: ClientIp,
    account: &Account,
    to: &carepost_model::Address,
    user_agent: &str,
) -> Result<(), WebError> {
    let settings = state.services.portal.settings();
    let org = state.organization_name();
    let when = Timestamp::now().to_rfc3339();
    let text = format!(
        "Your {org} staff account signed in from a network address it has not used before.\r\n\r\n\
         When:     {when}\r\n\
         Address:  {}\r\n\
         Browser:  {}\r\n\r\n\
         If this was you, there is nothing to do. If it was not, tell your administrator now:\r\n\
         someone may know your password.\r\n",
        ip.0,
        browser_summary(user_agent)
    );
    let message = mail_builder::MessageBuilder::new()
        .from((org.as_str(), format!("no-reply@{}", settings.hostname).as_str()))
        .to(to.as_str())
        .subject("Sign-in from a new address")
        .header("Auto-Submitted", mail_builder::headers::raw::Raw::new("auto-generated"))
        .text_body(text)
        .write_to_vec()
        .map_err(WebError::internal)?;
    state.services.intake.queue_own_mail(&account.tenant, None, to, message).await.map_err(WebError::internal)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::browser_summary;

    #[test]
    fn browsers_are_summarised_not_quoted() {
        let firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
        assert_eq!(browser_summary(firefox), "Firefox on Linux");
        let chrome = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36";
        assert_eq!(browser_summary(chrome), "Chrome on Windows");
        assert_eq!(browser_summary("<script>"), "an unknown browser");
    }
}
