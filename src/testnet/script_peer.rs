//! A peer of another implementation (js-libp2p, py-libp2p) in a child process, driven by lines:
//! commands go to its stdin, answers come on its stdout. The scripts in `tests/js` and `tests/py`
//! speak this protocol; the pubsub testnet and the interoperability tests drive them through this
//! one driver.
//!
//! - An answer to a command starts with a word the caller expects (`dialed …`, `found …`); one
//!   starting with `failed` is the command's error.
//! - `received <message id> <topic> <from>` lines are first-copy notices: each is timed the moment
//!   it is read, on this process's monotonic clock (the pipe adds microseconds), and kept apart
//!   from the answers.

use std::{
    collections::HashMap,
    process::Stdio,
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::{bail, Context as _};
use parsec_actors::pubsub::MessageId;
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    process::{Child, ChildStdin, Command},
    sync::mpsc,
    time::Instant,
};

/// How long a peer may take to start or to answer a command.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// First copies a peer remembers until [`ScriptPeer::forget_first_copies`].
const MAX_REMEMBERED: usize = 1 << 20;

/// Answers queued per peer before its reader waits.
const ANSWER_QUEUE: usize = 256;

/// How often [`ScriptPeer::await_first_copy`] looks.
const COPY_POLL: Duration = Duration::from_millis(10);

/// A message's first copy at the peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FirstCopy {
    /// When its notice was read.
    pub at: Instant,
    /// The notice's last field: the message's author or forwarder, as the script names it.
    pub from: String,
}

type FirstCopies = Arc<Mutex<HashMap<MessageId, FirstCopy>>>;

/// One peer script, killed when dropped.
#[derive(Debug)]
pub struct ScriptPeer {
    child: Child,
    stdin: ChildStdin,
    answers: mpsc::Receiver<String>,
    first_copies: FirstCopies,
}

impl ScriptPeer {
    /// Starts `command` (its program, arguments and directory set) with piped stdin and stdout;
    /// its stderr goes to ours. Must run on a tokio runtime, which then reads its lines.
    pub fn start(mut command: Command) -> anyhow::Result<Self> {
        let program = command.as_std().get_program().to_string_lossy().into_owned();
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting a peer script: is `{program}` installed?"))?;
        let stdin = child.stdin.take().context("the peer script's stdin")?;
        let stdout = child.stdout.take().context("the peer script's stdout")?;
        let (answers_tx, answers) = mpsc::channel(ANSWER_QUEUE);
        let first_copies = FirstCopies::default();
        let copies = first_copies.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(rest) = line.strip_prefix("received ") {
                    let at = Instant::now();
                    note_first_copy(&copies, rest, at);
                } else if answers_tx.send(line).await.is_err() {
                    break;
                }
            }
        });
        Ok(Self {
            child,
            stdin,
            answers,
            first_copies,
        })
    }

    /// Writes one command line.
    pub async fn send(&mut self, line: &str) -> anyhow::Result<()> {
        self.stdin
            .write_all(format!("{line}\n").as_bytes())
            .await
            .context("writing to a peer script")
    }

    /// The rest of the first answer that starts with `prefix` (other answers are skipped); a
    /// `failed` answer is an error, and so is silence for [`ANSWER_TIMEOUT`].
    pub async fn expect(&mut self, prefix: &str) -> anyhow::Result<String> {
        let give_up = Instant::now() + ANSWER_TIMEOUT;
        loop {
            let line = tokio::time::timeout_at(give_up, self.answers.recv())
                .await
                .with_context(|| {
                    format!("a peer script did not answer `{prefix}…` within {ANSWER_TIMEOUT:?}")
                })?
                .context("a peer script exited")?;
            if let Some(rest) = line.strip_prefix(prefix) {
                return Ok(rest.to_owned());
            }
            if line.starts_with("failed") {
                bail!("a peer script: {line}");
            }
        }
    }

    /// Sends `line`, then [`ScriptPeer::expect`]s `prefix`.
    pub async fn ask(&mut self, line: &str, prefix: &str) -> anyhow::Result<String> {
        self.send(line).await?;
        self.expect(prefix).await
    }

    /// The first copy of message `id`, if its notice came.
    pub fn first_copy(&self, id: MessageId) -> Option<FirstCopy> {
        let copies = self.first_copies.lock().unwrap_or_else(|e| e.into_inner());
        copies.get(&id).cloned()
    }

    /// Waits up to `timeout` for the first copy of `id`.
    pub async fn await_first_copy(&self, id: MessageId, timeout: Duration) -> anyhow::Result<FirstCopy> {
        let give_up = Instant::now() + timeout;
        loop {
            if let Some(copy) = self.first_copy(id) {
                return Ok(copy);
            }
            if Instant::now() >= give_up {
                bail!("message {id} did not reach the peer script within {timeout:?}");
            }
            tokio::time::sleep(COPY_POLL).await;
        }
    }

    /// Forgets the first copies noted so far.
    pub fn forget_first_copies(&self) {
        self.first_copies
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// Kills the script and waits for it.
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// Notes `received <id> <topic> <from>` (the prefix removed) if it is the first copy of a
/// message with one of our ids.
fn note_first_copy(copies: &FirstCopies, notice: &str, at: Instant) {
    let mut fields = notice.split(' ');
    let Some(id) = fields.next().and_then(|id| id.parse().ok()) else {
        return;
    };
    let from = fields.nth(1).unwrap_or_default().to_owned();
    let mut copies = copies.lock().unwrap_or_else(|e| e.into_inner());
    if copies.len() < MAX_REMEMBERED {
        copies.entry(MessageId(id)).or_insert(FirstCopy { at, from });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A shell script stands in for a peer: it answers, fails, and sends notices between answers.
    #[tokio::test]
    async fn answers_failures_and_first_copies_are_told_apart() {
        let id = MessageId::new();
        let script = format!(
            "read line; echo \"received {id} topic author\"; echo \"noise\"; echo \"dialed $line\"; \
             read line; echo \"received {id} topic later\"; echo \"failed $line: unreachable\"; read line"
        );
        let mut command = Command::new("sh");
        command.args(["-c", &script]);
        let mut peer = ScriptPeer::start(command).unwrap();
        assert_eq!(peer.ask("here", "dialed ").await.unwrap(), "here");
        let copy = peer.await_first_copy(id, Duration::from_secs(5)).await.unwrap();
        assert_eq!(copy.from, "author");
        let failed = peer.ask("there", "dialed ").await.unwrap_err();
        assert!(
            failed.to_string().contains("failed there: unreachable"),
            "{failed}"
        );
        // Only the first copy counts.
        assert_eq!(peer.first_copy(id).unwrap().from, "author");
        peer.forget_first_copies();
        assert_eq!(peer.first_copy(id), None);
        peer.stop().await;
    }

    #[tokio::test]
    async fn a_script_that_exits_is_an_error_not_a_hang() {
        let mut command = Command::new("sh");
        command.args(["-c", "echo started"]);
        let mut peer = ScriptPeer::start(command).unwrap();
        assert_eq!(peer.expect("started").await.unwrap(), "");
        let gone = peer.expect("anything").await.unwrap_err();
        assert!(gone.to_string().contains("exited"), "{gone}");
    }
}
