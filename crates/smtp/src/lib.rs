//! carepost's SMTP front door: the MX (mail from the Internet for the local domains),
//! submission with STARTTLS and submission over implicit TLS.
//!
//! A session accepts only what is well-formed (no bare CR or LF anywhere: no SMTP
//! smuggling), within limits (size while the body streams, recipients, errors, connections,
//! deadlines for slow clients), authenticated where it must be (AUTH only under TLS,
//! envelope sender bound to the account, attackers blocked) and checked where it comes from
//! the Internet (SPF, DKIM, DMARC, ARC). It then hands the message to an [`Ingress`] and
//! says 250 only once that made it durable.
//!
//! The crate knows nothing of inspection or policy: those wrap the [`Ingress`] seam.

pub mod accounts;
pub mod budget;
pub mod command;
pub mod config;
pub mod data;
pub mod inbound;
pub mod ingress;
pub mod limits;
pub mod received;
pub mod reply;
pub mod sasl;
pub mod server;
pub mod session;
pub mod stream;
pub mod tls;

pub use accounts::{AuthError, Authenticator, Refused, RefusedBecause, SignedIn, StoreAuthenticator};
pub use budget::DataBudget;
use carepost_guard::GuardSettings;
pub use config::{DmarcEnforcement, SmtpConfig};
pub use inbound::{DnsCaches, SenderVerifier, Verdict};
pub use ingress::{AcceptedMessage, Ingress, IntakeIngress, Rejection};
pub use reply::Reply;
pub use server::{RunningServer, Services, SmtpError, SmtpServer};
pub use session::ListenerKind;

impl SmtpConfig {
    /// The memory budget for message data, or why this configuration cannot have one.
    pub fn data_budget(&self) -> Result<DataBudget, SmtpError> {
        if self.max_data_memory < self.max_message_size {
            return Err(SmtpError::DataBudget { budget: self.max_data_memory, size: self.max_message_size });
        }
        Ok(DataBudget::new(usize::try_from(self.max_data_memory).unwrap_or(usize::MAX)))
    }

    /// The sign-in failure settings of this configuration.
    pub fn guard_settings(&self) -> GuardSettings {
        GuardSettings {
            failures_per_ip: self.auth_failures_per_ip.max(1),
            failures_per_login: self.auth_failures_per_login.max(1),
            failures_per_account: self.auth_failures_per_account.max(1),
            window: std::time::Duration::from_secs(self.auth_failure_window_secs),
            block_for: std::time::Duration::from_secs(self.block_secs),
            trusted: self.trusted_networks.clone(),
        }
    }
}
