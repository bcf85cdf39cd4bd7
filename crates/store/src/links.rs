//! The link registry (tracking link or code → owning account, campaign,
//! attribution window) and the click index that conversion attribution reads.
//!
//! A link's owner and campaign never change once registered: clicks already
//! credited to it must keep meaning the same thing.

use std::collections::{BTreeMap, HashMap};

use lift_domain::{AccountId, Micros};
use sea_orm::sea_query::Value;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, PaginatorTrait, QueryFilter, Statement, TransactionSession,
    TransactionTrait,
};

use crate::Error;
use crate::entity::link as entity;
use crate::ledger::{to_db, to_offset};

/// A registered link or code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub link: String,
    pub owner: AccountId,
    /// Empty when the link belongs to no campaign.
    pub campaign_id: String,
    /// How long after a click a conversion is credited to it.
    pub attribution_window_secs: u64,
    /// Where the link redirector sends visitors; empty = its default. Fixed by the
    /// first registration, like the owner.
    pub landing_url: String,
}

impl From<entity::Model> for Link {
    fn from(m: entity::Model) -> Self {
        Self {
            link: m.link,
            owner: AccountId::new(m.owner_network, m.owner_id),
            campaign_id: m.campaign_id,
            attribution_window_secs: u64::try_from(m.attribution_window_secs).unwrap_or(0),
            landing_url: m.landing_url,
        }
    }
}

/// Counts from [`register`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Registered {
    pub registered: u32,
    /// Already registered with the same owner and campaign.
    pub unchanged: u32,
}

/// Registers `links` all or nothing. A link already registered to another owner or
/// campaign (or given twice with different owners) is an [`Error::Conflict`].
pub async fn register<C>(db: &C, links: &[Link], now: Micros) -> Result<Registered, Error>
where
    C: ConnectionTrait + TransactionTrait,
{
    let mut wanted: BTreeMap<&str, &Link> = BTreeMap::new();
    for l in links {
        if let Some(prev) = wanted.insert(&l.link, l)
            && !same_owner(prev, l)
        {
            return Err(Error::Conflict(format!("link {:?} is given twice with different owners", l.link)));
        }
    }
    if wanted.is_empty() {
        return Ok(Registered::default());
    }
    let txn = db.begin().await?;
    let backend = txn.get_database_backend();
    let mut inserted = 0u64;
    let list: Vec<&Link> = wanted.values().copied().collect();
    for chunk in list.chunks(500) {
        let mut sql = String::from(
            "INSERT INTO links (link, owner_network, owner_id, campaign_id, attribution_window_secs, registered_at, landing_url) VALUES ",
        );
        let mut params = Vec::with_capacity(chunk.len() * 7);
        for (i, l) in chunk.iter().enumerate() {
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&placeholders(backend, i * 7, 7));
            params.extend([
                Value::from(l.link.clone()),
                Value::from(l.owner.network.clone()),
                Value::from(l.owner.id.clone()),
                Value::from(l.campaign_id.clone()),
                Value::BigInt(Some(to_db(l.attribution_window_secs))),
                Value::BigInt(Some(now)),
                Value::from(l.landing_url.clone()),
            ]);
        }
        // Concurrent registrations of the same link must not fail on the unique key:
        // the loser keeps the stored row and the comparison below judges it.
        sql.push_str(" ON CONFLICT (link) DO NOTHING");
        inserted += txn.execute_raw(Statement::from_sql_and_values(backend, sql, params)).await?.rows_affected();
    }
    let stored = get_many(&txn, wanted.keys().copied()).await?;
    for l in wanted.values() {
        match stored.get(&l.link) {
            Some(s) if same_owner(s, l) => {}
            Some(s) => {
                return Err(Error::Conflict(format!(
                    "link {:?} is already registered to {} (campaign {:?})",
                    l.link, s.owner, s.campaign_id
                )));
            }
            None => return Err(Error::Conflict(format!("link {:?} vanished while registering", l.link))),
        }
    }
    txn.commit().await?;
    let registered = u32::try_from(inserted).unwrap_or(u32::MAX);
    Ok(Registered { registered, unchanged: u32::try_from(wanted.len()).unwrap_or(u32::MAX) - registered })
}

fn same_owner(a: &Link, b: &Link) -> bool {
    a.owner == b.owner && a.campaign_id == b.campaign_id
}

fn placeholders(backend: DbBackend, start: usize, n: usize) -> String {
    let ps: Vec<String> = (1..=n)
        .map(|i| if backend == DbBackend::Postgres { format!("${}", start + i) } else { "?".to_owned() })
        .collect();
    format!("({})", ps.join(", "))
}

/// The registered links among `links`, by link.
pub async fn get_many<'a>(
    db: &impl ConnectionTrait,
    links: impl IntoIterator<Item = &'a str>,
) -> Result<HashMap<String, Link>, Error> {
    let mut keys: Vec<&str> = links.into_iter().collect();
    keys.sort_unstable();
    keys.dedup();
    let mut out = HashMap::with_capacity(keys.len());
    for chunk in keys.chunks(500) {
        let found = entity::Entity::find().filter(entity::Column::Link.is_in(chunk.iter().copied())).all(db).await?;
        out.extend(found.into_iter().map(|m| (m.link.clone(), Link::from(m))));
    }
    Ok(out)
}

pub async fn get(db: &impl ConnectionTrait, link: &str) -> Result<Option<Link>, Error> {
    Ok(entity::Entity::find_by_id(link.to_owned()).one(db).await?.map(Link::from))
}

/// Every link of a campaign.
pub async fn by_campaign(db: &impl ConnectionTrait, campaign_id: &str) -> Result<Vec<Link>, Error> {
    Ok(entity::Entity::find()
        .filter(entity::Column::CampaignId.eq(campaign_id))
        .all(db)
        .await?
        .into_iter()
        .map(Link::from)
        .collect())
}

pub async fn count(db: &impl ConnectionTrait) -> Result<u64, Error> {
    Ok(entity::Entity::find().count(db).await?)
}

/// A click on a registered link, as the click index keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Click {
    /// Ledger offset of the click event.
    pub offset: u64,
    pub visitor_id: String,
    pub link: String,
    pub occurred_at: Micros,
    /// The latest conversion time this click may be credited with.
    pub attributable_until: Micros,
}

/// Indexes clicks; call it in the transaction that appends the click events.
pub async fn record_clicks(db: &impl ConnectionTrait, clicks: &[Click]) -> Result<(), Error> {
    let backend = db.get_database_backend();
    for chunk in clicks.chunks(500) {
        let mut sql = String::from(
            "INSERT INTO link_clicks (click_offset, visitor_id, link, occurred_at, attributable_until) VALUES ",
        );
        let mut params = Vec::with_capacity(chunk.len() * 5);
        for (i, c) in chunk.iter().enumerate() {
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&placeholders(backend, i * 5, 5));
            params.extend([
                Value::BigInt(Some(to_db(c.offset))),
                Value::from(c.visitor_id.clone()),
                Value::from(c.link.clone()),
                Value::BigInt(Some(c.occurred_at)),
                Value::BigInt(Some(c.attributable_until)),
            ]);
        }
        db.execute_raw(Statement::from_sql_and_values(backend, sql, params)).await?;
    }
    Ok(())
}

/// The visitor's last click at or before `at` whose attribution window still covers
/// `at`, with the link it was on.
pub async fn last_click(
    db: &impl ConnectionTrait,
    visitor_id: &str,
    at: Micros,
) -> Result<Option<(Click, Link)>, Error> {
    let backend = db.get_database_backend();
    let sql = format!(
        "SELECT c.click_offset, c.occurred_at, c.attributable_until, l.link, l.owner_network, l.owner_id, \
                l.campaign_id, l.attribution_window_secs, l.landing_url \
         FROM link_clicks c JOIN links l ON l.link = c.link \
         WHERE c.visitor_id = {p1} AND c.occurred_at <= {p2} AND c.attributable_until >= {p2} \
         ORDER BY c.occurred_at DESC, c.click_offset DESC LIMIT 1",
        p1 = if backend == DbBackend::Postgres { "$1" } else { "?1" },
        p2 = if backend == DbBackend::Postgres { "$2" } else { "?2" },
    );
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            backend,
            sql,
            [Value::from(visitor_id.to_owned()), Value::BigInt(Some(at))],
        ))
        .await?;
    let Some(r) = row else { return Ok(None) };
    let link = Link {
        link: r.try_get_by_index(3)?,
        owner: AccountId::new(r.try_get_by_index::<String>(4)?, r.try_get_by_index::<String>(5)?),
        campaign_id: r.try_get_by_index(6)?,
        attribution_window_secs: u64::try_from(r.try_get_by_index::<i64>(7)?).unwrap_or(0),
        landing_url: r.try_get_by_index(8)?,
    };
    let click = Click {
        offset: to_offset(r.try_get_by_index::<i64>(0)?)?,
        visitor_id: visitor_id.to_owned(),
        link: link.link.clone(),
        occurred_at: r.try_get_by_index(1)?,
        attributable_until: r.try_get_by_index(2)?,
    };
    Ok(Some((click, link)))
}
