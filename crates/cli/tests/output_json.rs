//! `--output json` on the key and brand commands: one JSON document a script can read,
//! the secret in `"api_key"`, and `keys list` never carrying one.

use std::process::Command;

fn lift(db: &str, args: &[&str]) -> anyhow::Result<serde_json::Value> {
    let out = Command::new(env!("CARGO_BIN_EXE_lift")).args(args).args(["--database-url", db]).output()?;
    anyhow::ensure!(out.status.success(), "lift {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// Pins the JSON shapes of `keys create`, `keys list` and `brands create`.
#[test]
fn key_and_brand_commands_print_json() -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("lift-output-json-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let db = format!("sqlite://{}?mode=rwc", dir.join("auth.db").display());
    let r = (|| {
        let key = lift(&db, &["keys", "create", "--scope", "scores:read", "--name", "dash", "--output", "json"])?;
        let secret = key["api_key"].as_str().unwrap_or_default().to_owned();
        assert!(secret.starts_with("lift_"), "{key}");
        assert_eq!(key["scopes"], serde_json::json!(["scores:read"]));
        assert_eq!(key["name"], "dash");
        assert!(key["id"].as_str().is_some_and(|id| id.starts_with("key_")), "{key}");

        let list = lift(&db, &["keys", "list", "--output", "json"])?;
        let rows = list.as_array().cloned().unwrap_or_default();
        assert_eq!(rows.len(), 1, "{list}");
        assert_eq!(rows[0]["id"], key["id"]);
        assert_eq!(rows[0]["state"], "active");
        assert!(!list.to_string().contains(&secret), "the list leaks the secret: {list}");

        let brand = lift(&db, &["brands", "create", "Acme Coffee", "--output", "json"])?;
        assert_eq!(brand["name"], "Acme Coffee");
        assert!(brand["api_key"].as_str().is_some_and(|k| k.starts_with("lift_")), "{brand}");
        assert!(brand["brand_id"].as_str().is_some_and(|b| !b.is_empty()), "{brand}");
        anyhow::Ok(())
    })();
    let _ = std::fs::remove_dir_all(&dir);
    r
}
