//! Reaching a hub that has several addresses (an invitation names the host's LAN addresses
//! and its public one): the attempts are staggered as in Happy Eyeballs (RFC 8305 §5), so an
//! address that never answers (a LAN address seen from outside) costs a quarter second, not
//! a whole connect timeout, and the first connection to be made wins.

use std::time::Duration;

use tokio::net::TcpStream;
use tokio::task::JoinSet;

/// How long one attempt runs alone before the next address is tried beside it.
pub const STAGGER: Duration = Duration::from_millis(250);

/// Connects to the first of `addrs` to answer, trying them in order `STAGGER` apart, each
/// for at most `timeout`. Returns the stream and the index of its address, or why each
/// attempt failed.
pub async fn connect_first(addrs: &[String], timeout: Duration) -> Result<(TcpStream, usize), String> {
    let mut attempts = JoinSet::new();
    let mut failures: Vec<Option<String>> = vec![None; addrs.len()];
    let mut next = 0;
    loop {
        if next < addrs.len() {
            let addr = addrs[next].clone();
            let index = next;
            attempts.spawn(async move {
                let outcome = match tokio::time::timeout(timeout, TcpStream::connect(&addr)).await {
                    Ok(Ok(stream)) => Ok(stream),
                    Ok(Err(e)) => Err(format!("cannot reach the hub at {addr}: {e}")),
                    Err(_) => Err(format!("timed out reaching the hub at {addr}")),
                };
                (index, outcome)
            });
            next += 1;
        }
        // The next attempt starts when this one fails or the stagger has passed, whichever is
        // first; once every address is under way, only the outcomes are awaited.
        let stagger = async {
            if next < addrs.len() { tokio::time::sleep(STAGGER).await } else { std::future::pending().await }
        };
        tokio::select! {
            joined = attempts.join_next() => match joined {
                Some(Ok((index, Ok(stream)))) => return Ok((stream, index)),
                Some(Ok((index, Err(why)))) => failures[index] = Some(why),
                Some(Err(e)) => tracing::debug!("connect attempt ended: {e}"),
                None if next >= addrs.len() => break,
                None => {}
            },
            () = stagger => {}
        }
    }
    let why: Vec<String> = failures.into_iter().flatten().collect();
    Err(if why.is_empty() { "no hub address to connect to".into() } else { why.join("; ") })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_address_that_never_answers_is_passed_over_and_one_that_refuses_is_named() {
        let hub = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let good = hub.local_addr().unwrap().to_string();
        let refused = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
        // A listener whose accept queue is full drops new SYNs: a connect to it hangs, as one
        // to an address that is not there would (and the traffic stays on loopback).
        let full = tokio::net::TcpSocket::new_v4().unwrap();
        full.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let full = full.listen(0).unwrap();
        let silent = full.local_addr().unwrap().to_string();
        // Fill it: connections are queued until one is not answered.
        let mut queued = Vec::new();
        while let Ok(stream) =
            tokio::time::timeout(Duration::from_millis(300), TcpStream::connect(&silent)).await
        {
            queued.push(stream.unwrap());
            assert!(queued.len() < 16, "the listener's queue never fills");
        }
        let started = tokio::time::Instant::now();
        let (_, index) = connect_first(&[silent, refused.clone(), good], Duration::from_secs(30))
            .await
            .expect("the third address answers");
        assert_eq!(index, 2);
        assert!(started.elapsed() < Duration::from_secs(30), "waited for the silent address");
        let err = connect_first(std::slice::from_ref(&refused), Duration::from_secs(5)).await.unwrap_err();
        assert!(err.contains(&refused), "{err}");
        assert!(connect_first(&[], Duration::from_secs(1)).await.is_err());
    }
}
