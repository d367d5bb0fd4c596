//! `meta.properties`: which node a directory belongs to (Kafka's `MetaProperties`).
//!
//! Kafka writes a small properties file into every log directory and into the metadata log
//! directory when they are formatted, naming the node (`node.id`) and the cluster
//! (`cluster.id`), and a broker refuses to start on a directory whose file names another node
//! or cluster. That catches the operator's slip of pointing node 2 at node 1's disk (a copied
//! config, a swapped volume), which would otherwise make node 2 serve node 1's replicas as its
//! own and the controller count copies that are not where it thinks.
//!
//! gregor has no format step (`kafka-storage format`): `gregor serve` writes the file on the
//! first start of a directory and checks it on every later one. It names the node only: gregor
//! has no cluster-wide id to compare yet (each broker's `broker.meta` draws its own). A
//! directory without the file is a fresh disk, as before (a wiped broker rejoins through KIP-903's
//! empty-log-directory rule), and gets one; a directory whose file names another node stops
//! `serve` with an error naming both ids.

use anyhow::Context;
use std::path::Path;

/// The file's name in each directory, as Kafka names it.
pub const FILE: &str = "meta.properties";

/// The `version` gregor writes: Kafka's KRaft version (1), which has `node.id`.
const VERSION: &str = "1";

/// The directory `dir` holds nothing but (perhaps) its `meta.properties`: a fresh disk.
pub fn is_new(dir: &Path) -> bool {
    std::fs::read_dir(dir).map_or(true, |entries| {
        entries
            .filter_map(Result::ok)
            .all(|e| e.file_name() == FILE)
    })
}

/// Claim `dir` (created if missing) for node `node_id`: check its `meta.properties` if it has
/// one, write one if not. `what` names the directory in messages ("data directory").
pub fn claim(dir: &Path, what: &str, node_id: i32) -> anyhow::Result<()> {
    let path = dir.join(FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => check(&text, node_id).with_context(|| {
            format!(
                "refusing to start on {what} {}: its {FILE} belongs elsewhere",
                dir.display()
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating {what} {}", dir.display()))?;
            write(dir, node_id).with_context(|| format!("writing {}", path.display()))
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// The file's properties (`key=value` lines; `#` and `!` start comments, as in Java's
/// `Properties`, which Kafka reads it with).
fn properties(text: &str) -> impl Iterator<Item = (&str, &str)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('!'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim(), v.trim()))
}

fn check(text: &str, node_id: i32) -> anyhow::Result<()> {
    let found = properties(text)
        .find(|(k, _)| *k == "node.id")
        .map(|(_, v)| v)
        .ok_or_else(|| anyhow::anyhow!("{FILE} has no node.id"))?;
    let found: i32 = found
        .parse()
        .map_err(|_| anyhow::anyhow!("{FILE} has node.id={found:?}, not a number"))?;
    anyhow::ensure!(
        found == node_id,
        "it belongs to node {found} ({FILE}: node.id={found}), and this is node {node_id} \
         (--node-id). Start node {node_id} on its own directory; remove the file only if the \
         directory really is node {node_id}'s"
    );
    Ok(())
}

/// Write the file durably (temporary file synced, renamed over, directory synced).
fn write(dir: &Path, node_id: i32) -> std::io::Result<()> {
    let text = format!(
        "#Written by gregor serve on the first start of this directory: the node it belongs to.\n\
         node.id={node_id}\nversion={VERSION}\n"
    );
    crate::disk::write_atomic(dir, FILE, text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("gregor-meta-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn a_fresh_directory_is_claimed_then_refused_to_another_node() {
        let dir = scratch("claim");
        assert!(is_new(&dir), "a missing directory is new");
        claim(&dir, "data directory", 1).unwrap();
        assert!(is_new(&dir), "only the file: still a fresh disk");
        let text = std::fs::read_to_string(dir.join(FILE)).unwrap();
        assert!(
            text.contains("node.id=1\n") && text.contains("version=1\n"),
            "{text}"
        );
        claim(&dir, "data directory", 1).expect("its own node starts again");
        let e = format!("{:#}", claim(&dir, "data directory", 2).unwrap_err());
        assert!(
            e.contains("belongs to node 1") && e.contains("this is node 2"),
            "names both ids: {e}"
        );
        std::fs::write(dir.join("x"), b"").unwrap();
        assert!(!is_new(&dir));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_file_without_a_usable_node_id_is_refused_with_its_reason() {
        assert!(check("# c\n! c\n node.id = 7 \nversion=1\n", 7).is_ok());
        let e = check("version=1\n", 7).unwrap_err().to_string();
        assert!(e.contains("no node.id"), "{e}");
        let e = check("node.id=seven\n", 7).unwrap_err().to_string();
        assert!(e.contains("not a number"), "{e}");
    }
}
