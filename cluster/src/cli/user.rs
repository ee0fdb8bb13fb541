//! `martelo user create` and `martelo user list`: accounts in the meta group, for operators.
//!
//! `user create` hashes the password here with the gateway's own
//! `martelo_gateway::auth::password::hash_phc` (argon2id, m=19456 KiB, t=2, p=1; the PHC
//! string the gateway verifies logins with), and proposes
//! `RegisterUser` as the operator through the admin API (`Admin::propose_meta`). The operator
//! may create the first admin (`--admin`) while the cluster has no active admin; after that,
//! admins create accounts through the gateway. The password is read from a file or stdin,
//! never from a flag (which would leave it in the shell history and the process list), and
//! is never printed or logged.
//!
//! `user list` pages through the accounts in username order with `Client::list_users`.
//!
//! What does not live here: the rules of registration (martelo-engine's `meta`), the
//! retries (`martelo-client`).

use std::collections::BTreeSet;
use std::io::{Read as _, Write};
use std::path::PathBuf;

use clap::{Args, Subcommand};
use martelo_client::admin::Admin;
use martelo_client::client::{Client, ClientOptions, ReadConsistency};
use martelo_client::error::ClientError;
use martelo_engine::meta::{
    AccountStatus, DisplayName, PasswordHash, UserQuery, UserSummary, Username,
};
use martelo_engine::{
    Accepted, MetaAccepted, MetaAction, RejectCode, Reply, RequestId, Role, UserId,
};
use serde::Serialize;

use super::args::{Connection, consistency_parser};
use super::error::CliError;
use super::render::format_timestamp;

/// Longest password the CLI hashes, in bytes.
pub const PASSWORD_BYTES_MAX: usize = 1024;

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create an account (as the operator), for example the cluster's first admin.
    ///
    /// The password is read from --password-file or stdin and hashed here with argon2id; it
    /// is never sent, printed or logged. The operator may grant admin only while the cluster
    /// has no active admin; after that, admins manage accounts through the gateway.
    Create(UserCreateArgs),
    /// List accounts in username order.
    List(UserListArgs),
}

/// `--role`: a role an account may be created with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum RoleArg {
    Bidder,
    Seller,
}

#[derive(Debug, Args)]
pub struct UserCreateArgs {
    #[command(flatten)]
    pub connection: Connection,
    /// The username: 3 to 32 characters, compared case-insensitively.
    #[arg(long, value_name = "NAME")]
    pub username: String,
    /// The name shown to other users.
    #[arg(long, value_name = "TEXT")]
    pub display_name: String,
    /// Grant the admin role (only while the cluster has no active admin).
    #[arg(long)]
    pub admin: bool,
    /// A role to grant; repeat for several. [default: bidder, unless --admin]
    #[arg(long = "role", value_name = "ROLE", value_enum)]
    pub roles: Vec<RoleArg>,
    /// Read the password from this file (its first line; a trailing newline is dropped).
    #[arg(long, value_name = "PATH", required_unless_present = "password_stdin")]
    pub password_file: Option<PathBuf>,
    /// Read the password from stdin (its first line).
    #[arg(long, conflicts_with = "password_file")]
    pub password_stdin: bool,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct UserListArgs {
    #[command(flatten)]
    pub connection: Connection,
    /// Only usernames starting with this text.
    #[arg(long, value_name = "TEXT", default_value = "")]
    pub prefix: String,
    /// Most accounts to list (pages are fetched as needed).
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub limit: usize,
    /// How fresh the list must be.
    #[arg(long, value_parser = consistency_parser(), default_value = "linearizable")]
    pub consistency: ReadConsistency,
    /// Print the accounts as JSON.
    #[arg(long)]
    pub json: bool,
}

/// What `user create --json` prints (the username as stored: folded to lower case).
#[derive(Debug, Serialize)]
struct Created<'a> {
    user_id: u64,
    username: &'a str,
    roles: Vec<&'static str>,
    replayed: bool,
}

/// One account as `user list --json` prints it.
#[derive(Debug, Serialize)]
pub struct ListedUser {
    pub user_id: u64,
    pub username: String,
    pub display_name: String,
    pub roles: Vec<&'static str>,
    /// `active` or `suspended`.
    pub status: &'static str,
    pub created_at_us: u64,
}

impl UserCreateArgs {
    pub async fn execute(self, admin: &Admin, out: &mut dyn Write) -> Result<(), CliError> {
        let password = match &self.password_file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|error| {
                    input(format!(
                        "cannot read the password file {}: {error}",
                        path.display()
                    ))
                })?;
                first_line(&text)
            }
            None => {
                let mut text = String::new();
                std::io::stdin()
                    .take(PASSWORD_BYTES_MAX as u64 + 2)
                    .read_to_string(&mut text)
                    .map_err(|error| input(format!("cannot read the password: {error}")))?;
                first_line(&text)
            }
        };
        let roles = roles(self.admin, &self.roles);
        let registered = register_as_operator(
            admin,
            &self.connection.addr,
            &self.username,
            &self.display_name,
            &password,
            &roles,
        )
        .await?;
        let Registered {
            user,
            username,
            replayed,
        } = match registered {
            Ok(created) => created,
            Err(code) => {
                return Err(CliError::Failed(format!(
                    "the meta group refused the account: {}{}",
                    code.as_str(),
                    advice(code.as_str())
                )));
            }
        };
        let role_names: Vec<&'static str> = roles.iter().map(|role| role.as_str()).collect();
        if self.json {
            let created = Created {
                user_id: user.0,
                username: username.as_str(),
                roles: role_names,
                replayed,
            };
            serde_json::to_writer_pretty(&mut *out, &created).map_err(std::io::Error::from)?;
            writeln!(out)?;
        } else {
            writeln!(
                out,
                "created user {} ({}) with roles {}",
                user.0,
                username,
                role_names.join(", ")
            )?;
        }
        Ok(())
    }
}

impl UserListArgs {
    pub async fn execute(self, admin: &Admin, out: &mut dyn Write) -> Result<(), CliError> {
        let options = ClientOptions {
            connect_timeout: admin.options().connect_timeout,
            ..ClientOptions::default()
        };
        let client = Client::connect(&self.connection.addr, options).await?;
        let mut users = Vec::new();
        let mut after = None;
        while users.len() < self.limit {
            let room = (self.limit - users.len()).min(martelo_proto::LIST_USERS_LIMIT_MAX);
            let query = UserQuery {
                prefix: self.prefix.clone(),
                after: after.take(),
                limit: room,
            };
            let page = client.list_users(&query, self.consistency).await?;
            users.extend(page.users);
            match page.next_after {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        users.truncate(self.limit);
        if self.json {
            let listed: Vec<ListedUser> = users.iter().map(listed).collect();
            serde_json::to_writer_pretty(&mut *out, &listed).map_err(std::io::Error::from)?;
            writeln!(out)?;
        } else {
            write!(out, "{}", render_users(&users))?;
        }
        Ok(())
    }
}

/// The roles an account is created with: `--role`s, plus admin with `--admin`; bidder when
/// neither is given.
pub fn roles(admin: bool, listed: &[RoleArg]) -> BTreeSet<Role> {
    let mut roles: BTreeSet<Role> = listed
        .iter()
        .map(|role| match role {
            RoleArg::Bidder => Role::Bidder,
            RoleArg::Seller => Role::Seller,
        })
        .collect();
    if admin {
        roles.insert(Role::Admin);
    }
    if roles.is_empty() {
        roles.insert(Role::Bidder);
    }
    roles
}

/// A registration the meta group accepted.
#[derive(Debug)]
pub struct Registered {
    pub user: UserId,
    /// As stored: folded to lower case.
    pub username: Username,
    /// True when this request id had been applied before.
    pub replayed: bool,
}

/// Registers an account as the operator (`RegisterUser` through the admin API): hashes
/// the password, proposes, and returns the new user's id and stored username, or the meta
/// group's rejection code. `user create` and `martelo dev` (its first admin) use it.
pub async fn register_as_operator(
    admin: &Admin,
    seeds: &[String],
    username: &str,
    display_name: &str,
    password: &str,
    roles: &BTreeSet<Role>,
) -> Result<Result<Registered, RejectCode>, CliError> {
    let action = MetaAction::RegisterUser {
        username: Username::fold(username)
            .map_err(|error| input(format!("--username: {error}")))?,
        display_name: DisplayName::try_from(display_name)
            .map_err(|error| input(format!("--display-name: {error}")))?,
        password_hash: hash_password(password)?,
        roles: roles.clone(),
    };
    let proposed = admin
        .propose_meta(seeds, action, fresh_request_id()?)
        .await
        .map_err(|error| CliError::Failed(error.to_string()))?;
    match proposed.reply {
        Reply::Accepted(Accepted::Meta(MetaAccepted::UserRegistered { user, username })) => {
            Ok(Ok(Registered {
                user,
                username,
                replayed: proposed.replayed,
            }))
        }
        Reply::Rejected(code) => Ok(Err(code)),
        other => Err(CliError::Failed(format!(
            "unexpected reply to a registration: {other:?}"
        ))),
    }
}

/// Hashes `password` with argon2id (the crate's default parameters) into a PHC string.
pub fn hash_password(password: &str) -> Result<PasswordHash, CliError> {
    if password.is_empty() {
        return Err(input("the password is empty".to_owned()));
    }
    if password.len() > PASSWORD_BYTES_MAX {
        return Err(input(format!(
            "the password is longer than {PASSWORD_BYTES_MAX} bytes"
        )));
    }
    let phc = martelo_gateway::auth::password::hash_phc(password)
        .map_err(|error| CliError::Failed(format!("cannot hash the password: {error}")))?;
    PasswordHash::try_from(phc)
        .map_err(|error| CliError::Failed(format!("the password hash is unusable: {error}")))
}

/// The first line of `text`, without its line ending.
fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or("").to_owned()
}

/// A request id no other `user create` uses: a retry inside this command reuses it (the
/// client does), while a second run hashes the password with a new salt and so must not.
fn fresh_request_id() -> Result<RequestId, CliError> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos());
    RequestId::try_from(format!("user-create-{nanos}-{}", std::process::id()))
        .map_err(|error| CliError::Failed(error.to_string()))
}

fn input(message: String) -> CliError {
    CliError::Client(ClientError::InvalidInput(message))
}

/// What to do about a refused registration, for the codes an operator can meet.
fn advice(code: &str) -> &'static str {
    match code {
        "username_taken" => " (another account has this username: pick another)",
        "admin_exists" => {
            " (the cluster has an active admin: the operator may grant admin only before the \
             first one exists; ask an admin to create the account through the gateway)"
        }
        "permission_denied" => {
            " (the operator may create accounts with admin only while none exists, and other \
             accounts only through an admin)"
        }
        _ => "",
    }
}

fn status_name(status: &AccountStatus) -> &'static str {
    match status {
        AccountStatus::Active => "active",
        AccountStatus::Suspended { .. } => "suspended",
    }
}

/// An account as `user list --json` prints it.
pub fn listed(user: &UserSummary) -> ListedUser {
    ListedUser {
        user_id: user.id.0,
        username: user.username.as_str().to_owned(),
        display_name: user.display_name.as_str().to_owned(),
        roles: user.roles.iter().map(|role| role.as_str()).collect(),
        status: status_name(&user.status),
        created_at_us: user.created_at.0,
    }
}

/// The accounts as a table, one line each.
pub fn render_users(users: &[UserSummary]) -> String {
    let mut text = format!(
        "{:>8}  {:<32}  {:<24}  {:<20}  {:<9}  {}\n",
        "ID", "USERNAME", "DISPLAY NAME", "ROLES", "STATUS", "CREATED"
    );
    for user in users {
        let roles: Vec<&str> = user.roles.iter().map(|role| role.as_str()).collect();
        text.push_str(&format!(
            "{:>8}  {:<32}  {:<24}  {:<20}  {:<9}  {}\n",
            user.id.0,
            user.username.as_str(),
            user.display_name.as_str(),
            roles.join(","),
            status_name(&user.status),
            format_timestamp(user.created_at)
        ));
    }
    if users.is_empty() {
        text.push_str("(no users)\n");
    }
    text
}

/// The user id `user create` printed, from its text output (for scripts and tests).
pub fn created_user_id(output: &str) -> Option<UserId> {
    let rest = output.strip_prefix("created user ")?;
    let id = rest.split_whitespace().next()?;
    id.parse().ok().map(UserId)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Command;
    use crate::cli::tests::parse;

    #[test]
    fn create_takes_the_password_from_a_file_or_stdin_never_from_a_flag() {
        let Command::User(UserCommand::Create(args)) = parse(&[
            "user",
            "create",
            "--cluster",
            "127.0.0.1:7001,127.0.0.1:7002",
            "--username",
            "root",
            "--display-name",
            "Root",
            "--admin",
            "--password-file",
            "/tmp/pw",
        ]) else {
            panic!("user create");
        };
        assert_eq!(args.connection.addr.len(), 2);
        assert!(args.admin);
        assert_eq!(args.password_file, Some(PathBuf::from("/tmp/pw")));
        let Command::User(UserCommand::Create(args)) = parse(&[
            "user",
            "create",
            "--username",
            "ana",
            "--display-name",
            "Ana",
            "--role",
            "bidder",
            "--role",
            "seller",
            "--password-stdin",
        ]) else {
            panic!("user create");
        };
        assert!(args.password_stdin);
        assert_eq!(args.roles, vec![RoleArg::Bidder, RoleArg::Seller]);
    }

    #[test]
    fn roles_default_to_bidder_and_admin_adds_admin() {
        assert_eq!(roles(false, &[]), BTreeSet::from([Role::Bidder]));
        assert_eq!(roles(true, &[]), BTreeSet::from([Role::Admin]));
        assert_eq!(
            roles(true, &[RoleArg::Seller]),
            BTreeSet::from([Role::Seller, Role::Admin])
        );
    }

    #[test]
    fn a_password_is_hashed_with_argon2id_defaults_into_a_phc_string() {
        let hash = hash_password("correct horse").expect("hashes");
        assert!(
            hash.as_phc().starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{}",
            hash.as_phc()
        );
        assert!(!hash.as_phc().contains("correct horse"));
        assert!(hash_password("").is_err());
        assert!(hash_password(&"x".repeat(PASSWORD_BYTES_MAX + 1)).is_err());
        assert_eq!(first_line("secret\n"), "secret");
        assert_eq!(first_line("secret\r\nmore"), "secret");
    }

    #[test]
    fn the_created_user_id_is_read_back_from_the_text_output() {
        assert_eq!(
            created_user_id("created user 12 (root) with roles admin\n"),
            Some(UserId(12))
        );
        assert_eq!(created_user_id("something else"), None);
    }
}
