//! The carepost command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cli;

/// carepost: self-hosted secure e-mail for healthcare.
#[derive(Parser, Debug)]
#[command(name = "carepost", version, about, long_about = None, propagate_version = true)]
struct Cli {
    /// Configuration file. Default: $CAREPOST_CONFIG, else ./carepost.toml if it exists, else
    /// the built-in defaults.
    #[arg(long, global = true, value_name = "FILE", env = "CAREPOST_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory, overriding data_dir from the configuration.
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run carepost: open the data directory (created on first start) and serve.
    Serve,
    /// Write a commented carepost.toml listing every key with its default.
    Init {
        /// Directory to write carepost.toml into.
        #[arg(long, value_name = "DIR", default_value = ".")]
        dir: PathBuf,
    },
    /// Keys applications use for the REST API.
    #[command(subcommand)]
    Apikey(cli::apikey::ApikeyCommand),
    /// Check configuration files.
    #[command(subcommand)]
    Config(cli::config::ConfigCommand),
    /// Verify and export the tamper-evident audit log.
    #[command(subcommand)]
    Audit(cli::audit::AuditCommand),
    /// Rotate carepost's own encryption keys.
    #[command(subcommand)]
    Key(cli::key::KeyCommand),
    /// The recipient key directory: S/MIME certificates and OpenPGP keys of correspondents.
    #[command(subcommand)]
    Keys(cli::keys::KeysCommand),
    /// Run the PHI/PII scanner on .eml files.
    #[command(subcommand)]
    Dlp(cli::dlp::DlpCommand),
    /// Try the policy on a message.
    #[command(subcommand)]
    Policy(cli::policy::PolicyCommand),
    /// Accounts that sign in to SMTP submission.
    #[command(subcommand)]
    User(cli::user::UserCommand),
    /// Client addresses refused by SMTP (after repeated failed sign-ins, or by hand).
    #[command(subcommand)]
    Block(cli::block::BlockCommand),
    /// Review mail that policy quarantined.
    #[command(subcommand)]
    Quarantine(cli::quarantine::QuarantineCommand),
    /// Messages kept in the secure portal: status and retraction.
    #[command(subcommand)]
    Portal(cli::portal::PortalCommand),
    /// See and steer the outbound queue.
    #[command(subcommand)]
    Queue(cli::queue::QueueCommand),
    /// DKIM signing keys per domain.
    #[command(subcommand)]
    Dkim(cli::dkim::DkimCommand),
    /// The DNS records a sending domain should publish.
    #[command(subcommand)]
    Dns(cli::dns::DnsCommand),
    /// The per-tenant list of addresses carepost does not send to.
    #[command(subcommand)]
    Suppress(cli::suppress::SuppressCommand),
    /// Endpoints that receive signed delivery events (webhooks).
    #[command(subcommand)]
    Webhook(cli::webhook::WebhookCommand),
    /// The sealed blob store: copy it to an S3-compatible bucket.
    #[command(subcommand)]
    Blobs(cli::blobs::BlobsCommand),
    /// The metadata store: move a SQLite installation to PostgreSQL.
    #[command(subcommand)]
    Store(cli::store::StoreCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("carepost: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let global = cli::Global { config: cli.config, data_dir: cli.data_dir };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve => cli::serve::run(&global).await,
            Command::Init { dir } => cli::config::init(&dir),
            Command::Config(c) => cli::config::run(c),
            Command::Apikey(c) => cli::apikey::run(&global, c).await,
            Command::Audit(c) => cli::audit::run(&global, c).await,
            Command::Key(c) => cli::key::run(&global, c).await,
            Command::Keys(c) => cli::keys::run(&global, c).await,
            Command::Dlp(c) => cli::dlp::run(c),
            Command::Policy(c) => cli::policy::run(&global, c).await,
            Command::User(c) => cli::user::run(&global, c).await,
            Command::Block(c) => cli::block::run(&global, c).await,
            Command::Quarantine(c) => cli::quarantine::run(&global, c).await,
            Command::Portal(c) => cli::portal::run(&global, c).await,
            Command::Queue(c) => cli::queue::run(&global, c).await,
            Command::Dkim(c) => cli::dkim::run(&global, c).await,
            Command::Dns(c) => cli::dns::run(&global, c).await,
            Command::Suppress(c) => cli::suppress::run(&global, c).await,
            Command::Webhook(c) => cli::webhook::run(&global, c).await,
            Command::Blobs(c) => cli::blobs::run(&global, c).await,
            Command::Store(c) => cli::store::run(&global, c).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("carepost: {e:#}");
            ExitCode::from(1)
        }
    }
}
