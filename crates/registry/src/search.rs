//! `docker search`: the registry's v1 search API (`GET /v1/search?q=TERM&n=LIMIT`), which
//! Docker Hub's index and some registries answer.

use reqwest::Method;
use serde::{Deserialize, Serialize};

use crate::client::{error_of, Access, Client, ClientError};

/// Answers larger than this are refused.
const ANSWER_MAX: usize = 4 << 20;
/// Docker Hub's index, which serves its search.
const DOCKER_HUB_INDEX: &str = "https://index.docker.io";

#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("{url}: the answer is larger than 4 MiB")]
    TooLarge { url: String },
    #[error("{url}: invalid search results: {source}")]
    Json {
        url: String,
        source: serde_json::Error,
    },
}

/// One repository found (dockerd's `registry.SearchResult`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchResult {
    #[serde(default)]
    pub star_count: i64,
    #[serde(default)]
    pub is_official: bool,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub is_automated: bool,
    #[serde(default)]
    pub description: String,
}

#[derive(Debug, Deserialize)]
struct Answer {
    #[serde(default)]
    results: Vec<SearchResult>,
}

/// Searches `domain`'s index for `term`, at most `limit` results.
pub async fn search(
    client: &Client,
    domain: &str,
    term: &str,
    limit: u32,
) -> Result<Vec<SearchResult>, SearchError> {
    let base = if domain == "docker.io" {
        DOCKER_HUB_INDEX.to_string()
    } else {
        client.base_url(domain).await?
    };
    let query: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("q", term)
        .append_pair("n", &limit.to_string())
        .finish();
    let url = format!("{base}/v1/search?{query}");
    let resp = client
        .send(domain, "", Access::Pull, Method::GET, &url, |r| r)
        .await?;
    if !resp.status().is_success() {
        return Err(error_of(Method::GET, &url, resp).await.into());
    }
    let Some(bytes) = crate::resolve::read_bounded(resp, ANSWER_MAX, &url).await? else {
        return Err(SearchError::TooLarge { url });
    };
    let answer: Answer =
        serde_json::from_slice(&bytes).map_err(|source| SearchError::Json { url, source })?;
    Ok(answer.results)
}
