//! The layered configuration: defaults < lift.toml < environment < flags, unknown
//! settings refused, secrets redacted by `lift config show`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use lift_cli::config::{Layers, Source, resolve, show};

fn layers(file: Option<&str>, env: &[(&str, &str)], flags: &[(&str, &str)]) -> Layers {
    Layers {
        file: file.map(|t| (PathBuf::from("lift.toml"), t.to_owned())),
        env: env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect::<BTreeMap<_, _>>(),
        flags: flags.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
    }
}

const FILE: &str = r#"
[server]
rate_limit = 5

[scoring.model]
damping = 0.7
window_days = 180

[matching]
link_base = "go.example"
"#;

/// Pins the order: each layer overrides the ones below it, setting by setting, and
/// remembers where each value came from.
#[test]
fn layers_override_in_order() -> anyhow::Result<()> {
    let d = resolve(&layers(None, &[], &[]))?;
    assert_eq!(d.config.scoring.model.damping, 0.85);
    assert_eq!(d.config.matching.link_base, "lift.to");
    assert_eq!(d.sources["scoring.model.damping"], Source::Default);

    let f = resolve(&layers(Some(FILE), &[], &[]))?;
    assert_eq!(f.config.scoring.model.damping, 0.7);
    assert_eq!(f.config.scoring.model.window_days, 180.0, "an integer where a number is expected");
    assert_eq!(f.config.server.rate_limit, 5.0);
    assert_eq!(f.config.matching.link_base, "go.example");
    assert_eq!(f.sources["scoring.model.damping"], Source::File("lift.toml".into()));

    let env = [("LIFT_SCORING__MODEL__DAMPING", "0.75"), ("LIFT_RESCORE_DEBOUNCE_MS", "40")];
    let e = resolve(&layers(Some(FILE), &env, &[]))?;
    assert_eq!(e.config.scoring.model.damping, 0.75);
    assert_eq!(e.config.scoring.rescore_debounce_ms, 40, "a short alias");
    assert_eq!(e.config.matching.link_base, "go.example", "untouched by the environment");
    assert_eq!(e.sources["scoring.model.damping"], Source::Env("LIFT_SCORING__MODEL__DAMPING".into()));

    let g = resolve(&layers(Some(FILE), &env, &[("scoring.model.damping", "0.8")]))?;
    assert_eq!(g.config.scoring.model.damping, 0.8);
    assert_eq!(g.config.scoring.rescore_debounce_ms, 40);
    assert_eq!(g.sources["scoring.model.damping"], Source::Flag);

    // The generic name wins over its alias (both are the environment layer).
    let both = [("LIFT_RESCORE_DEBOUNCE_MS", "40"), ("LIFT_SCORING__RESCORE_DEBOUNCE_MS", "60")];
    assert_eq!(resolve(&layers(None, &both, &[]))?.config.scoring.rescore_debounce_ms, 60);

    // What the services get.
    let s = g.config.scoring.to_config();
    assert_eq!((s.model.damping, s.debounce.as_millis()), (0.8, 40));
    assert_eq!(g.config.matching.to_config().link_base, "go.example");
    Ok(())
}

/// Pins that the web console's settings layer like every other service's.
#[test]
fn web_console_settings_layer_too() -> anyhow::Result<()> {
    let d = resolve(&layers(None, &[], &[]))?;
    assert_eq!((d.config.web.addr.as_str(), d.config.web.secure_cookie), ("127.0.0.1:8080", false));
    let file = "[web]\naddr = \"0.0.0.0:8080\"\nmatching_url = \"http://matching:50053\"\n";
    let env = [("LIFT_WEB_SECURE_COOKIE", "true"), ("LIFT_WEB_ADDR", "0.0.0.0:9000")];
    let r = resolve(&layers(Some(file), &env, &[("web.addr", "0.0.0.0:9100")]))?;
    assert_eq!(r.config.web.addr, "0.0.0.0:9100");
    assert_eq!(r.config.web.matching_url, "http://matching:50053");
    assert!(r.config.web.secure_cookie);
    assert_eq!(r.sources["web.secure_cookie"], Source::Env("LIFT_WEB_SECURE_COOKIE".into()));
    Ok(())
}

/// Pins that a typo or a wrong type is an error naming the setting, in every layer.
#[test]
fn unknown_or_mistyped_settings_are_refused() {
    let err = |l: Layers| resolve(&l).expect_err("refused").to_string();
    assert!(err(layers(Some("[scoring.model]\ndampng = 0.8\n"), &[], &[])).contains("scoring.model.dampng"));
    assert!(err(layers(None, &[("LIFT_SCORING__MODEL__DAMPNG", "1")], &[])).contains("scoring.model.dampng"));
    assert!(err(layers(None, &[], &[("scoring.nope", "1")])).contains("scoring.nope"));
    assert!(err(layers(Some("[scoring.model]\ndamping = \"high\"\n"), &[], &[])).contains("scoring.model.damping"));
    assert!(err(layers(None, &[], &[("server.request_timeout_secs", "soon")])).contains("not an integer"));
    assert!(err(layers(Some("not toml ["), &[], &[])).contains("lift.toml"));
}

/// Pins redaction: `config show` never prints a database password or an API key,
/// and says where each non-default value came from.
#[test]
fn show_redacts_secrets() -> anyhow::Result<()> {
    let env = [
        ("DATABASE_URL", "postgres://lift:hunter2@db:5432/lift"),
        ("LIFT_AUTH_DATABASE_URL", "postgres://db/auth?user=a&password=sekrit&sslmode=require"),
        ("LIFT_API_KEY", "lift_0123456789abcdef"),
    ];
    let out = show(&resolve(&layers(Some(FILE), &env, &[("scoring.model.damping", "0.8")]))?)?;
    for secret in ["hunter2", "sekrit", "0123456789abcdef"] {
        assert!(!out.contains(secret), "{secret} leaked:\n{out}");
    }
    assert!(out.contains("url = \"postgres://lift:<redacted>@db:5432/lift\"  # env DATABASE_URL"), "{out}");
    assert!(out.contains("password=<redacted>&sslmode=require"), "{out}");
    assert!(out.contains("api_key = \"<redacted>\"  # env LIFT_API_KEY"), "{out}");
    assert!(out.contains("damping = 0.8  # flag"), "{out}");
    assert!(out.contains("link_base = \"go.example\"  # file lift.toml"), "{out}");
    assert!(out.contains("[scoring.model]"), "{out}");
    Ok(())
}

/// Pins the command as an operator runs it: `lift config show` with a file, the
/// environment and a flag, secrets redacted.
#[test]
fn lift_config_show_prints_the_effective_configuration() -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("lift-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let file = dir.join("lift.toml");
    std::fs::write(&file, FILE)?;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_lift"))
        .args(["config", "show", "--config"])
        .arg(&file)
        .args(["--set", "scoring.model.damping=0.8"])
        .env("DATABASE_URL", "postgres://lift:hunter2@db/lift")
        .env("LIFT_SCORING__MODEL__HALF_LIFE_DAYS", "14")
        .current_dir(&dir)
        .output()?;
    let _ = std::fs::remove_dir_all(&dir);
    let stdout = String::from_utf8(out.stdout)?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!stdout.contains("hunter2"), "{stdout}");
    assert!(stdout.contains("damping = 0.8  # flag"), "{stdout}");
    assert!(stdout.contains("half_life_days = 14.0  # env LIFT_SCORING__MODEL__HALF_LIFE_DAYS"), "{stdout}");
    assert!(stdout.contains("rate_limit = 5.0  # file"), "{stdout}");
    Ok(())
}

/// Pins the retention setting: off by default, a horizon within the scoring model's
/// window refused with a message naming both settings, a longer one accepted and
/// carried into ingestion's config.
#[test]
fn retention_must_outlast_the_model_window() -> anyhow::Result<()> {
    let d = resolve(&layers(None, &[], &[]))?;
    assert_eq!(d.config.ingest.retention_days, 0.0);
    assert!(d.config.ingest.to_config().retention.is_none(), "off by default");
    d.config.check_retention()?;

    let short = resolve(&layers(None, &[("LIFT_INGEST__RETENTION_DAYS", "90")], &[]))?;
    let err = short.config.check_retention().expect_err("90 days is inside the 365-day window").to_string();
    assert!(err.contains("ingest.retention_days = 90"), "{err}");
    assert!(err.contains("scoring.model.window_days = 365"), "{err}");
    let equal = resolve(&layers(None, &[], &[("ingest.retention_days", "365")]))?;
    assert!(equal.config.check_retention().is_err(), "the horizon must be longer than the window");
    let negative = resolve(&layers(None, &[], &[("ingest.retention_days", "-1")]))?;
    assert!(negative.config.check_retention().is_err());

    let ok =
        resolve(&layers(Some(FILE), &[], &[("ingest.retention_days", "200"), ("ingest.retention_every_secs", "600")]))?;
    ok.config.check_retention()?; // the file's window is 180 days
    let r = ok.config.ingest.to_config().retention.expect("on");
    assert_eq!(r.horizon.as_secs(), 200 * 86_400);
    assert_eq!(r.every.as_secs(), 600);
    Ok(())
}
