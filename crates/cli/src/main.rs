//! `berth`: the Docker-compatible command line of Berth. It speaks the Docker Engine API the
//! way the docker CLI does, so it works against berthd and against dockerd.

mod batch;
mod build;
mod connection;
mod container;
mod context;
mod context_cmd;
mod embedded;
mod fmt;
mod formatter;
mod image;
mod network;
mod network_ipam;
mod progress;
mod shell;
mod system;
mod tabwriter;
mod template;
mod term;
mod volume;

use std::process::ExitCode;

use anyhow::Result;
use berth_api::client::{Client, ClientError, DEFAULT_HOST};
use clap::{Args, Parser, Subcommand};

/// An error that ends the command with a given exit status (and an optional message).
#[derive(Debug)]
pub struct StatusError {
    pub code: i32,
    pub message: Option<String>,
}

impl std::fmt::Display for StatusError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.message {
            Some(m) => write!(f, "{m}"),
            None => write!(f, "exit status {}", self.code),
        }
    }
}

impl std::error::Error for StatusError {}

pub fn status(code: i32, message: impl Into<Option<String>>) -> anyhow::Error {
    StatusError {
        code,
        message: message.into(),
    }
    .into()
}

#[derive(Parser, Debug)]
#[command(
    name = "berth",
    about = "A self-sufficient runtime for containers",
    version,
    disable_help_subcommand = true
)]
pub struct Cli {
    #[command(flatten)]
    conn: connection::ConnFlags,
    /// Name of the context to use to connect to the daemon (overrides DOCKER_HOST env var and
    /// default context set with "berth context use")
    #[arg(short = 'c', long = "context")]
    context: Option<String>,
    /// Enable debug mode
    #[arg(short = 'D', long = "debug", global = true)]
    debug: bool,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Show the Berth version information
    Version(system::VersionOpts),
    /// Display system-wide information
    Info(system::InfoOpts),
    /// List containers
    Ps(container::PsOpts),
    /// List images
    Images(image::ImagesOpts),
    /// Create and run a new container from an image
    Run(container::RunOpts),
    /// Create a new container
    Create(container::CreateCmd),
    /// Start one or more stopped containers
    Start(container::StartOpts),
    /// Stop one or more running containers
    Stop(container::StopOpts),
    /// Kill one or more running containers
    Kill(container::KillOpts),
    /// Restart one or more containers
    Restart(container::StopOpts),
    /// Remove one or more containers
    Rm(container::RmOpts),
    /// Fetch the logs of a container
    Logs(container::LogsOpts),
    /// Execute a command in a running container
    Exec(container::ExecOpts),
    /// Return low-level information on Berth objects
    Inspect(container::InspectOpts),
    /// Download an image from a registry
    Pull(image::PullOpts),
    /// Upload an image to a registry
    Push(image::PushOpts),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag(image::TagOpts),
    /// Remove one or more images
    Rmi(image::RmiOpts),
    /// Import the contents from a tarball to create a filesystem image
    Import(image::ImportOpts),
    /// Build an image from a Dockerfile
    Build(build::BuildOpts),
    /// Save one or more images to a tar archive
    Save(image::SaveOpts),
    /// Load an image from a tar archive or STDIN
    Load(image::LoadOpts),
    /// Log in to a registry
    Login(image::LoginOpts),
    /// Log out from a registry
    Logout(image::LogoutOpts),
    /// Pause all processes within one or more containers
    Pause(container::NamesOpts),
    /// Unpause all processes within one or more containers
    Unpause(container::NamesOpts),
    /// Rename a container
    Rename(container::RenameOpts),
    /// Block until one or more containers stop, then print their exit codes
    Wait(container::NamesOpts),
    /// Attach local standard input, output, and error streams to a running container
    Attach(container::AttachOpts),
    /// Display the running processes of a container
    Top(container::TopOpts),
    /// Display a live stream of container(s) resource usage statistics
    Stats(container::StatsOpts),
    /// Copy files/folders between a container and the local filesystem
    Cp(container::CpOpts),
    /// Export a container's filesystem as a tar archive
    Export(container::ExportOpts),
    /// Create a new image from a container's changes
    Commit(container::CommitOpts),
    /// Show the history of an image
    History(image::HistoryOpts),
    /// Get real time events from the server
    Events(system::EventsOpts),
    /// Manage containers
    #[command(subcommand)]
    Container(ContainerCmd),
    /// Manage images
    #[command(subcommand)]
    Image(ImageCmd),
    /// Manage networks
    #[command(subcommand)]
    Network(network::NetworkCmd),
    /// Manage volumes
    #[command(subcommand)]
    Volume(volume::VolumeCmd),
    /// List port mappings or a specific mapping for the container
    Port(network::PortOpts),
    /// Manage Berth
    #[command(subcommand)]
    System(SystemCmd),
    /// Manage contexts
    #[command(subcommand)]
    Context(context_cmd::ContextCmd),
    /// Print the shell completion script (bash, zsh or fish)
    Completion(shell::CompletionOpts),
    /// Write man pages to a directory
    Man(shell::ManOpts),
    /// List the names of containers, images, networks or volumes (for completions)
    #[command(name = "__complete", hide = true)]
    Complete(shell::CompleteOpts),
}

#[derive(Subcommand, Debug)]
pub enum ContainerCmd {
    /// Remove all stopped containers
    Prune(PruneOpts),
    /// List containers
    #[command(alias = "list")]
    Ls(container::PsOpts),
    /// Display detailed information on one or more containers
    Inspect(container::InspectOpts),
}

#[derive(Subcommand, Debug)]
pub enum ImageCmd {
    /// Build an image from a Dockerfile
    Build(build::BuildOpts),
    /// Remove unused images
    Prune(ImagePruneOpts),
    /// List images
    #[command(alias = "list")]
    Ls(image::ImagesOpts),
    /// Display detailed information on one or more images
    Inspect(container::InspectOpts),
}

#[derive(Subcommand, Debug)]
pub enum SystemCmd {
    /// Show Berth disk usage
    Df(system::DfOpts),
    /// Remove unused data
    Prune(SystemPruneOpts),
    /// Display system-wide information
    Info(system::InfoOpts),
    /// Get real time events from the server
    Events(system::EventsOpts),
    /// Proxy the stdio stream to the daemon connection. Should not be invoked manually.
    #[command(name = "dial-stdio")]
    DialStdio,
}

#[derive(Args, Debug)]
pub struct PruneOpts {
    /// Do not prompt for confirmation
    #[arg(short, long)]
    force: bool,
    /// Provide filter values (e.g. "until=<timestamp>")
    #[arg(long = "filter")]
    filter: Vec<String>,
}

#[derive(Args, Debug)]
pub struct ImagePruneOpts {
    /// Remove all unused images, not just dangling ones
    #[arg(short, long)]
    all: bool,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    force: bool,
    /// Provide filter values (e.g. "until=<timestamp>")
    #[arg(long = "filter")]
    filter: Vec<String>,
}

#[derive(Args, Debug)]
pub struct SystemPruneOpts {
    /// Remove all unused images not just dangling ones
    #[arg(short, long)]
    all: bool,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    force: bool,
    /// Prune anonymous volumes
    #[arg(long)]
    volumes: bool,
    /// Provide filter values (e.g. "label=<key>=<value>")
    #[arg(long = "filter")]
    filter: Vec<String>,
}

/// A negotiated client. At the default socket with no daemon there, as root, berthd is
/// started first (the embedded default).
pub async fn connect(cli_host: &str) -> Result<Client> {
    match negotiated(cli_host).await {
        Err(e) if cli_host == DEFAULT_HOST && is_connect_error(&e) => {
            let socket = DEFAULT_HOST.trim_start_matches("unix://");
            match embedded::start_daemon(socket) {
                Ok(true) => negotiated(cli_host).await,
                Ok(false) => Err(e),
                Err(start) => Err(anyhow::anyhow!("{e}\nstarting berthd: {start}")),
            }
        }
        other => other,
    }
}

fn is_connect_error(e: &anyhow::Error) -> bool {
    matches!(
        e.downcast_ref::<ClientError>(),
        Some(ClientError::Connect { .. })
    )
}

async fn negotiated(cli_host: &str) -> Result<Client> {
    let tls = connection::tls_for(cli_host);
    let mut client = Client::with_tls(cli_host, tls.as_ref())?;
    let pinned = std::env::var("BERTH_API_VERSION")
        .or_else(|_| std::env::var("DOCKER_API_VERSION"))
        .ok()
        .filter(|s| !s.is_empty());
    match pinned {
        Some(v) => {
            client.ping().await?;
            client.pin_version(&v);
        }
        None => {
            client.negotiate().await?;
        }
    }
    Ok(client)
}

fn subcommand_name(args: &[String]) -> String {
    // the first argument that is not a global flag (or its value)
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        if [
            "-H",
            "--host",
            "-c",
            "--context",
            "--tlscacert",
            "--tlscert",
            "--tlskey",
        ]
        .contains(&a.as_str())
        {
            it.next();
            continue;
        }
        if a.starts_with('-') {
            continue;
        }
        return a.clone();
    }
    String::new()
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let cli = match Cli::try_parse_from(&args) {
        Ok(c) => c,
        Err(e) => {
            use clap::error::{ContextKind, ContextValue, ErrorKind};
            match e.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
                    let _ = e.print();
                    return ExitCode::SUCCESS;
                }
                ErrorKind::UnknownArgument => {
                    let sub = subcommand_name(&args);
                    let arg = match e.get(ContextKind::InvalidArg) {
                        Some(ContextValue::String(s)) => s.clone(),
                        _ => String::new(),
                    };
                    let flag = arg.split('=').next().unwrap_or("").to_string();
                    if flag.starts_with("--") || (flag.starts_with('-') && flag.len() == 2) {
                        let shown = if flag.starts_with("--") {
                            format!("unknown flag: {flag}")
                        } else {
                            format!("unknown shorthand flag: '{}' in {flag}", &flag[1..])
                        };
                        if sub.is_empty() {
                            eprintln!("{shown}\nSee 'berth --help'.");
                        } else {
                            eprintln!("{shown}\nSee 'berth {sub} --help'.");
                        }
                        return ExitCode::from(125);
                    }
                    let _ = e.print();
                    return ExitCode::from(125);
                }
                ErrorKind::MissingSubcommand
                | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                    let _ = e.print();
                    return ExitCode::SUCCESS;
                }
                _ => {
                    let _ = e.print();
                    return ExitCode::from(125);
                }
            }
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("berth: {e}");
            return ExitCode::from(1);
        }
    };
    let code = runtime.block_on(async {
        match dispatch(&cli).await {
            Ok(code) => code,
            Err(e) => report(&e),
        }
    });
    // stdin readers may still be blocked in their thread: leave without waiting for them
    use std::io::Write;
    let _ = std::io::stdout().flush();
    std::process::exit(code);
}

/// Prints an error as docker does; the exit status.
fn report(e: &anyhow::Error) -> i32 {
    if let Some(s) = e.downcast_ref::<StatusError>() {
        if let Some(m) = &s.message {
            eprintln!("{m}");
        }
        return s.code;
    }
    let broken_pipe = e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    });
    if broken_pipe {
        // as a Go program killed by SIGPIPE on its stdout
        return 141;
    }
    if let Some(ce) = e.downcast_ref::<ClientError>() {
        eprintln!("{ce}");
        return 1;
    }
    eprintln!("{e:#}");
    1
}

async fn dispatch(cli: &Cli) -> Result<i32> {
    match &cli.command {
        Cmd::Context(c) => return context_cmd::context(cli, c).await,
        Cmd::Completion(o) => return shell::completion(o),
        Cmd::Man(o) => return shell::man(o),
        _ => {}
    }
    let target = connection::resolve(&cli.conn, cli.context.as_deref())?;
    let h = target.host.as_str();
    match &cli.command {
        Cmd::Version(o) => system::version(h, o).await,
        Cmd::Info(o) => system::info(h, o).await,
        Cmd::Ps(o) => container::ps(h, o).await,
        Cmd::Images(o) => image::images(h, o).await,
        Cmd::Run(o) => container::run(h, o).await,
        Cmd::Create(o) => container::create_cmd(h, o).await,
        Cmd::Start(o) => container::start(h, o).await,
        Cmd::Stop(o) => container::stop(h, o, false).await,
        Cmd::Restart(o) => container::stop(h, o, true).await,
        Cmd::Kill(o) => container::kill(h, o).await,
        Cmd::Rm(o) => container::rm(h, o).await,
        Cmd::Logs(o) => container::logs(h, o).await,
        Cmd::Exec(o) => container::exec(h, o).await,
        Cmd::Inspect(o) => container::inspect(h, o, None).await,
        Cmd::Pull(o) => image::pull_cmd(h, o).await,
        Cmd::Push(o) => image::push(h, o).await,
        Cmd::Tag(o) => image::tag(h, o).await,
        Cmd::Rmi(o) => image::rmi(h, o).await,
        Cmd::Import(o) => image::import(h, o).await,
        Cmd::Build(o) => build::build(h, o, "berth build").await,
        Cmd::Save(o) => image::save(h, o).await,
        Cmd::Load(o) => image::load(h, o).await,
        Cmd::Login(o) => image::login(h, o).await,
        Cmd::Logout(o) => image::logout(o).await,
        Cmd::Pause(o) => container::simple(h, o, "pause").await,
        Cmd::Unpause(o) => container::simple(h, o, "unpause").await,
        Cmd::Rename(o) => container::rename(h, o).await,
        Cmd::Wait(o) => container::wait(h, o).await,
        Cmd::Attach(o) => container::attach_cmd(h, o).await,
        Cmd::Top(o) => container::top(h, o).await,
        Cmd::Stats(o) => container::stats(h, o).await,
        Cmd::Cp(o) => container::cp(h, o).await,
        Cmd::Export(o) => container::export(h, o).await,
        Cmd::Commit(o) => container::commit(h, o).await,
        Cmd::History(o) => image::history(h, o).await,
        Cmd::Events(o) => system::events(h, o).await,
        Cmd::Network(c) => network::network(h, c).await,
        Cmd::Volume(c) => volume::volume(h, c).await,
        Cmd::Port(o) => network::port(h, o).await,
        Cmd::Completion(o) => shell::completion(o),
        Cmd::Man(o) => shell::man(o),
        Cmd::Context(c) => context_cmd::context(cli, c).await,
        Cmd::Complete(o) => shell::complete(h, o).await,
        Cmd::Container(c) => match c {
            ContainerCmd::Prune(o) => system::container_prune(h, o).await,
            ContainerCmd::Ls(o) => container::ps(h, o).await,
            ContainerCmd::Inspect(o) => container::inspect(h, o, Some("container")).await,
        },
        Cmd::Image(c) => match c {
            ImageCmd::Build(o) => build::build(h, o, "berth image build").await,
            ImageCmd::Prune(o) => system::image_prune(h, o).await,
            ImageCmd::Ls(o) => image::images(h, o).await,
            ImageCmd::Inspect(o) => container::inspect(h, o, Some("image")).await,
        },
        Cmd::System(c) => match c {
            SystemCmd::Df(o) => system::df(h, o).await,
            SystemCmd::Prune(o) => system::system_prune(h, o).await,
            SystemCmd::Info(o) => system::info(h, o).await,
            SystemCmd::Events(o) => system::events(h, o).await,
            SystemCmd::DialStdio => context_cmd::dial_stdio(h).await,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn run_takes_the_command_verbatim() {
        let cli = Cli::try_parse_from(["berth", "run", "--rm", "img", "echo", "-n", "--rm", "x"]);
        let Ok(Cli {
            command: Cmd::Run(o),
            ..
        }) = cli
        else {
            panic!("run did not parse");
        };
        assert_eq!(o.args(), ["img", "echo", "-n", "--rm", "x"]);
    }
}
