//! Pull tickets: how the CRI proxy's check reaches the runtime's own.
//!
//! The proxy checks `repository:tag` and then has the runtime pull `repository@digest`, so
//! that the runtime gets what was checked. containerd then asks the verifier hook about
//! `repository@digest`, a name with no tag, which trusted metadata lists only if the
//! publisher signed the digest as a pin; and the event watcher sees records of that name.
//! While the proxy's pull is under way it holds a ticket for (repository, digest), and a
//! question about exactly that digest-only name is answered as the tagged name the proxy
//! checked: the same verification, not a weaker one. A ticket ends with its pull.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use pullguard_node::service::Verify;
use pullguard_node::{Answer, NodeStatus, UnknownScope};
use pullguard_plugin::registry::ImageRef;

/// (registry, repository, digest) → the tagged references being pulled as it, with a count.
type Key = (String, String, String);

#[derive(Default)]
pub struct Tickets {
    live: Mutex<HashMap<Key, Vec<String>>>,
}

fn key_of(image: &ImageRef, digest: &str) -> Key {
    (
        image.registry().to_string(),
        image.repository().to_string(),
        digest.to_string(),
    )
}

impl Tickets {
    /// A ticket for pulling `checked` (a tagged reference the node admitted) as its
    /// repository at `digest`, until the guard is dropped.
    pub fn issue(self: &Arc<Self>, checked: &ImageRef, digest: &str) -> Ticket {
        let key = key_of(checked, digest);
        let tagged = checked.to_string();
        self.live
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(key.clone())
            .or_default()
            .push(tagged.clone());
        Ticket {
            tickets: Arc::clone(self),
            key,
            tagged,
        }
    }

    /// The tagged reference a digest-only `reference` is being pulled as, if any.
    fn tagged_for(&self, reference: &str, digest: &str) -> Option<String> {
        // Every question from the socket comes this way: with no pull under way (or no
        // digest in the name) nothing is parsed.
        if !reference.contains('@')
            || self
                .live
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .is_empty()
        {
            return None;
        }
        let image: ImageRef = reference.parse().ok()?;
        if image.tag().is_some() {
            return None;
        }
        let named = image.digest()?.to_string();
        if !digest.is_empty() && digest != named {
            return None;
        }
        self.live
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key_of(&image, &named))
            .and_then(|t| t.first().cloned())
    }
}

impl Tickets {
    /// The tagged reference some live ticket pulls content `digest` as: an image ID record
    /// made by the pull names nothing else.
    pub fn tagged_for_digest(&self, digest: &str) -> Option<String> {
        self.live
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .find(|((_, _, d), _)| d == digest)
            .and_then(|(_, t)| t.first().cloned())
    }
}

/// A live ticket; dropping it ends it.
pub struct Ticket {
    tickets: Arc<Tickets>,
    key: Key,
    tagged: String,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut live = self
            .tickets
            .live
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(list) = live.get_mut(&self.key) {
            if let Some(at) = list.iter().position(|t| *t == self.tagged) {
                list.remove(at);
            }
            if list.is_empty() {
                live.remove(&self.key);
            }
        }
    }
}

/// The node, with digest-only questions covered by a live ticket answered as the ticket's
/// tagged reference.
pub struct Ticketed<V> {
    node: Arc<V>,
    tickets: Arc<Tickets>,
}

impl<V> Ticketed<V> {
    pub fn new(node: Arc<V>, tickets: Arc<Tickets>) -> Self {
        Ticketed { node, tickets }
    }

    pub fn tickets(&self) -> &Arc<Tickets> {
        &self.tickets
    }
}

fn as_ticketed(mut answer: Answer, tagged: &str) -> Answer {
    answer.verdict.message = format!(
        "pulled by the CRI proxy as {tagged}: {}",
        answer.verdict.message
    );
    answer
}

impl<V: Verify> Verify for Ticketed<V> {
    fn verify(&self, reference: &str, digest: &str, descriptor: Option<&str>) -> Answer {
        match self.tickets.tagged_for(reference, digest) {
            Some(tagged) => as_ticketed(self.node.verify(&tagged, digest, descriptor), &tagged),
            None => self.node.verify(reference, digest, descriptor),
        }
    }

    fn verify_at_once(
        &self,
        reference: &str,
        digest: &str,
        descriptor: Option<&str>,
    ) -> Option<Answer> {
        match self.tickets.tagged_for(reference, digest) {
            Some(tagged) => self
                .node
                .verify_at_once(&tagged, digest, descriptor)
                .map(|a| as_ticketed(a, &tagged)),
            None => self.node.verify_at_once(reference, digest, descriptor),
        }
    }

    fn status(&self) -> NodeStatus {
        self.node.status()
    }

    fn refresh(&self, scope: Option<&str>) -> Result<NodeStatus, UnknownScope> {
        self.node.refresh(scope)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pullguard_plugin::verdict::{ReasonCode, Verdict};

    /// Admits only tagged references (as a scope without digest pins would).
    struct TagsOnly(Mutex<Vec<String>>);

    impl Verify for TagsOnly {
        fn verify(&self, reference: &str, _: &str, _: Option<&str>) -> Answer {
            self.0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(reference.to_string());
            let tagged = reference
                .parse::<ImageRef>()
                .is_ok_and(|r| r.tag().is_some());
            Answer::from(if tagged {
                Verdict::admit_unchecked("tagged")
            } else {
                Verdict::deny(ReasonCode::UnknownTarget, "no pin")
            })
        }
        /// How many questions it was asked, as its "evaluations".
        fn status(&self) -> NodeStatus {
            NodeStatus {
                scopes: Vec::new(),
                cache_hits: 0,
                cache_misses: 0,
                evaluations: self.0.lock().unwrap_or_else(PoisonError::into_inner).len() as u64,
            }
        }
        /// It has no scopes.
        fn refresh(&self, scope: Option<&str>) -> Result<NodeStatus, UnknownScope> {
            Err(UnknownScope {
                name: scope.unwrap_or("*").to_string(),
            })
        }
    }

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    const E: &str = "sha256:1123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn a_ticket_covers_exactly_its_digest_only_name_while_it_lives() {
        let node = Arc::new(TagsOnly(Mutex::new(Vec::new())));
        let tickets = Arc::new(Tickets::default());
        let t = Ticketed::new(Arc::clone(&node), Arc::clone(&tickets));
        let pinned = format!("127.0.0.1:5000/acme/app@{D}");
        assert!(!t.verify(&pinned, D, None).verdict.admitted);

        let checked: ImageRef = "127.0.0.1:5000/acme/app:1".parse().expect("ref");
        let ticket = tickets.issue(&checked, D);
        let a = t.verify(&pinned, D, None);
        assert!(a.verdict.admitted, "{a:?}");
        assert!(a
            .verdict
            .message
            .starts_with("pulled by the CRI proxy as 127.0.0.1:5000/acme/app:1"));
        assert!(t.verify(&pinned, "", None).verdict.admitted);
        // Another digest, repository, or a digest that is not the name's: not covered.
        for (r, d) in [
            (format!("127.0.0.1:5000/acme/app@{E}"), E),
            (format!("127.0.0.1:5000/acme/other@{D}"), D),
            (pinned.clone(), E),
        ] {
            assert!(!t.verify(&r, d, None).verdict.admitted, "{r} {d}");
        }
        assert_eq!(
            tickets.tagged_for_digest(D).as_deref(),
            Some("127.0.0.1:5000/acme/app:1")
        );
        assert_eq!(tickets.tagged_for_digest(E), None);
        let second = tickets.issue(&checked, D);
        drop(ticket);
        assert!(
            t.verify(&pinned, D, None).verdict.admitted,
            "one ticket is left"
        );
        drop(second);
        assert!(
            !t.verify(&pinned, D, None).verdict.admitted,
            "no ticket is left"
        );
        let asked = node
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        assert!(asked.contains(&"127.0.0.1:5000/acme/app:1".to_string()));
        // Status and refresh are the node's own.
        assert_eq!(t.status().evaluations, asked.len() as u64);
        assert_eq!(
            t.refresh(Some("127.0.0.1:5000/acme")),
            Err(UnknownScope {
                name: "127.0.0.1:5000/acme".into()
            })
        );
    }
}
