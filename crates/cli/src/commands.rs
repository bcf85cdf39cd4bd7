//! The handlers of `lift bench`, `lift keys` and `lift privacy`: each reads its
//! parsed arguments and prints for a person or a script.

use std::time::Duration;

use lift_cli::stack::{self, Databases};

use crate::args::{AuditOutput, BenchCommand, KeysCommand, Output, PrivacyArgs, PrivacyCommand};

/// `lift bench …`: each benchmark prints its table with the baseline beside it.
pub(crate) async fn bench(command: BenchCommand) -> anyhow::Result<()> {
    match command {
        BenchCommand::Ingest { database_url, events, batch, streams, ledger } => {
            let db = lift_store::connect(&database_url).await?;
            let opts = lift_ingest::bench::BenchOptions { events, batch_size: batch, streams, ..Default::default() };
            match ledger {
                Some(url) => println!("{}", lift_ingest::ledger::bench::bench(db, &url, &opts).await?),
                None => println!("{}", lift_ingest::bench::bench(db, &opts).await?),
            }
        }
        BenchCommand::CacheRefresh { accounts, changed, chunk } => {
            let opts = lift_cli::cachebench::CacheBenchOptions { accounts, changed, chunk };
            println!("{}", lift_cli::cachebench::run(&opts).await?);
        }
        BenchCommand::Links { seconds, connections, threads, rate, ingest_only, rounds } => {
            let opts = lift_cli::linkbench::LinksBenchOptions {
                seconds: seconds.max(1),
                connections: connections.max(1),
                threads: threads.max(1),
                rate: rate.max(1),
                ingest_only,
                rounds: rounds.max(1),
                ..Default::default()
            };
            println!("{}", lift_cli::linkbench::bench(opts).await?);
        }
        BenchCommand::Report { events, creators, calls, baseline_calls } => {
            let opts = lift_cli::reportbench::ReportBenchOptions {
                events,
                creators,
                calls,
                baseline_calls,
                ..Default::default()
            };
            println!("{}", lift_cli::reportbench::run(opts).await?);
        }
        BenchCommand::Match { accounts, calls, baseline_calls, page_size } => {
            let opts = lift_cli::matchbench::MatchBenchOptions {
                accounts,
                calls,
                baseline_calls,
                page_size,
                ..Default::default()
            };
            println!(
                "match bench: {accounts} accounts, {calls} calls through the cache, {baseline_calls} through the scan"
            );
            println!("{}", lift_cli::matchbench::run(opts).await?);
        }
        BenchCommand::Soak { seconds, events, writers, subscribers, batch, database_url } => {
            let opts = lift_cli::soak::SoakOptions {
                duration: Duration::from_secs(seconds),
                events,
                writers: writers.max(1),
                subscribers,
                batch: batch.max(1),
                databases: database_url.as_deref().map(Databases::shared),
                ..Default::default()
            };
            println!("soak: up to {events} events for up to {seconds}s, {writers} writers, {subscribers} subscribers");
            let r = lift_cli::soak::run(opts).await?;
            println!("| measure | value |\n|---|---|");
            println!("| events written / acknowledged | {} / {} |", r.written, r.acknowledged);
            println!("| stored (ledger events / head offset) | {} / {} |", r.stored, r.head);
            for (i, c) in r.consumed.iter().enumerate() {
                println!("| subscriber {i} consumed | {c} |");
            }
            println!("| write phase | {:.1} s ({:.0} events/s) |", r.write_secs, r.events_per_sec());
            println!("| subscribers reached the head after writing stopped | {:.1} s |", r.drain_secs);
            println!("| concurrent queries (failed) | {} ({}) |", r.queries, r.query_errors);
            println!("| scoring's committed offset at the end | {} |", r.scoring_offset);
            println!("counts agree: acknowledged = stored = consumed");
        }
        BenchCommand::Latency { rates, seconds, batch, writers, accounts, debounce_ms, incremental_only } => {
            let mut reports = Vec::new();
            let mut last = lift_cli::latency::LatencyOptions::default();
            for rate in rates {
                // Incremental runs first, then the from-scratch baseline at the same rate.
                for incremental in [true, false].into_iter().filter(|i| *i || !incremental_only) {
                    let opts = lift_cli::latency::LatencyOptions {
                        rate: rate.max(1),
                        duration: Duration::from_secs(seconds),
                        batch: batch.max(1),
                        writers: writers.max(1),
                        accounts: accounts.max(2),
                        debounce: Duration::from_millis(debounce_ms),
                        incremental,
                        ..Default::default()
                    };
                    let runs = if incremental { "incremental" } else { "from-scratch" };
                    eprintln!("latency: {rate} events/s for {seconds}s, {runs} runs ...");
                    reports.push(lift_cli::latency::run(&opts).await?);
                    last = opts;
                }
            }
            lift_cli::latency::print_table(&reports, &last);
        }
    }
    Ok(())
}

/// `lift keys create|revoke|list`.
pub(crate) async fn keys(command: KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::Create { scopes, brand, accounts, name, auth_database_url, database_url, output } => {
            let db = lift_store::connect(auth_database_url.as_deref().unwrap_or(&database_url)).await?;
            let (k, secret) =
                lift_runtime::auth::create_bound_key(&db, &name, &scopes, brand.as_deref(), &accounts).await?;
            if output == Output::Json {
                let doc = serde_json::json!({
                    "id": k.id, "name": k.name, "scopes": k.scopes, "brand_id": k.brand_id,
                    "accounts": k.accounts, "api_key": secret,
                });
                println!("{doc}");
                return Ok(());
            }
            println!("key {} ({}) scopes {}", k.id, k.name, k.scopes.join(" "));
            if let Some(b) = &k.brand_id {
                println!("acts for brand {b}");
            }
            if !k.accounts.is_empty() {
                println!("reads only the accounts {}", k.accounts.join(", "));
            }
            println!("api key (shown once, stored hashed): {secret}");
        }
        KeysCommand::Revoke { id, auth_database_url, database_url } => {
            let db = lift_store::connect(auth_database_url.as_deref().unwrap_or(&database_url)).await?;
            if lift_runtime::auth::revoke_key(&db, &id).await? {
                println!("key {id} revoked; servers refuse it within {:?}", lift_runtime::auth::DEFAULT_KEY_TTL);
            } else {
                anyhow::bail!("no unrevoked key {id}");
            }
        }
        KeysCommand::List { auth_database_url, database_url, output } => {
            let db = lift_store::connect(auth_database_url.as_deref().unwrap_or(&database_url)).await?;
            let keys = lift_store::api_keys::list(&db).await?;
            if output == Output::Json {
                let doc: Vec<_> = keys
                    .iter()
                    .map(|k| {
                        serde_json::json!({
                            "id": k.id,
                            "state": if k.revoked_at.is_some() { "revoked" } else { "active" },
                            "scopes": k.scopes,
                            "brand_id": k.brand_id,
                            "name": k.name,
                            "created_at_unix_micros": k.created_at,
                            "revoked_at_unix_micros": k.revoked_at,
                        })
                    })
                    .collect();
                println!("{}", serde_json::Value::Array(doc));
                return Ok(());
            }
            for k in keys {
                let state = if k.revoked_at.is_some() { "revoked" } else { "active" };
                println!(
                    "{}\t{state}\t{}\t{}\t{}",
                    k.id,
                    k.scopes.join(" "),
                    k.brand_id.as_deref().unwrap_or("-"),
                    k.name
                );
            }
        }
    }
    Ok(())
}

/// `lift privacy export|erase|audit`.
pub(crate) async fn privacy(a: PrivacyArgs) -> anyhow::Result<()> {
    use lift_cli::privacy as p;
    let mut client = lift_proto::privacy::v1::privacy_service_client::PrivacyServiceClient::new(
        stack::channel_with_key(&a.ingest_url, a.api_key.as_deref())?,
    );
    match a.command {
        PrivacyCommand::Export { account, visitor } => {
            let subject = p::subject(account.as_deref(), visitor.as_deref())?;
            let mut out = std::io::stdout().lock();
            let mut scoring = match a.scoring_url.as_str() {
                "none" => None,
                url => Some(lift_proto::scoring::v1::scoring_service_client::ScoringServiceClient::new(
                    stack::channel_with_key(url, a.api_key.as_deref())?,
                )),
            };
            let mut matching = match a.matching_url.as_str() {
                "none" => None,
                url => {
                    Some(lift_proto::matching::v1::matching_privacy_service_client::MatchingPrivacyServiceClient::new(
                        stack::channel_with_key(url, a.api_key.as_deref())?,
                    ))
                }
            };
            let sources = p::Sources { scoring: scoring.as_mut(), matching: matching.as_mut() };
            let s = p::export(&mut client, sources, subject, &mut out).await?;
            let unavailable = match s.score_explanations_unavailable {
                0 => String::new(),
                n => format!(" ({n} not available from scoring, each saying why)"),
            };
            eprintln!(
                "exported {} events, {} links, {} score-history points, {} score-change explanations{unavailable} \
                 and {} matching rows (ledger read through offset {}); not covered: {}",
                s.events,
                s.links,
                s.score_history_points,
                s.score_explanations,
                s.matching_records,
                s.through_offset,
                s.not_covered.join("; ")
            );
        }
        PrivacyCommand::Erase { account, visitor, yes } => {
            let subject = p::subject(account.as_deref(), visitor.as_deref())?;
            if !yes {
                anyhow::bail!("an erasure cannot be undone: run again with --yes to erase");
            }
            let e = p::erase(&mut client, subject).await?;
            println!(
                "erased {} events, {} links, {} click-index rows; erasure marker at ledger offset {}; subject hash {}",
                e.events_erased, e.links_deleted, e.clicks_deleted, e.marker_offset, e.subject_hash
            );
        }
        PrivacyCommand::Audit { output } => {
            let entries = p::audit(&mut client).await?;
            match output {
                AuditOutput::Text => print!("{}", p::audit_table(&entries)),
                AuditOutput::Json => {
                    for e in entries {
                        let at = e.at.map(|t| t.seconds * 1_000_000 + i64::from(t.nanos) / 1_000);
                        let line = serde_json::json!({
                            "id": e.id, "at_unix_micros": at, "key_id": e.key_id, "scope": e.scope,
                            "action": p::action_name(e.action),
                            "subject_hash": e.subject_hash, "events": e.events,
                        });
                        println!("{line}");
                    }
                }
            }
        }
    }
    Ok(())
}
