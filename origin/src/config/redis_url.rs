//! Redis Cluster URLs: the schemes `redis+cluster://` and `rediss+cluster://` (TLS), followed
//! by one or more seed nodes separated by commas:
//! `redis+cluster://[user:password@]host:port[,host:port...]`. The seeds only bootstrap; the
//! client learns every node from them. A cluster has one database, so no `/db` path.

/// The seed URLs (`redis://` or `rediss://` each) of a cluster URL; `None` for any other URL.
///
/// # Errors
/// No seed, or a database path.
pub fn cluster_seeds(url: &str) -> Option<Result<Vec<String>, String>> {
    let (scheme, rest) = if let Some(rest) = url.strip_prefix("redis+cluster://") {
        ("redis", rest)
    } else if let Some(rest) = url.strip_prefix("rediss+cluster://") {
        ("rediss", rest)
    } else {
        return None;
    };
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    if !path.is_empty() && path != "0" {
        return Some(Err(format!(
            "a Redis Cluster has one database; drop the path /{path}"
        )));
    }
    let (userinfo, hosts) = match authority.rsplit_once('@') {
        Some((userinfo, hosts)) => (format!("{userinfo}@"), hosts),
        None => (String::new(), authority),
    };
    let seeds: Vec<String> = hosts
        .split(',')
        .map(str::trim)
        .filter(|host| !host.is_empty())
        .map(|host| format!("{scheme}://{userinfo}{host}"))
        .collect();
    if seeds.is_empty() {
        return Some(Err("a Redis Cluster URL names no seed node".to_owned()));
    }
    Some(Ok(seeds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_urls_name_their_seeds() {
        assert!(cluster_seeds("redis://127.0.0.1:6379").is_none());
        let seeds = cluster_seeds("redis+cluster://a:7000,b:7001").map(Result::unwrap);
        assert_eq!(
            seeds,
            Some(vec![
                "redis://a:7000".to_owned(),
                "redis://b:7001".to_owned()
            ])
        );
        let seeds = cluster_seeds("rediss+cluster://user:pw@a:7000/").map(Result::unwrap);
        assert_eq!(seeds, Some(vec!["rediss://user:pw@a:7000".to_owned()]));
        assert!(cluster_seeds("redis+cluster://a:7000/3").is_some_and(|r| r.is_err()));
        assert!(cluster_seeds("redis+cluster://").is_some_and(|r| r.is_err()));
    }
}
