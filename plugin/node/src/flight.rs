//! Shared evaluations (DESIGN §5 step 4): while one request evaluates a key, the others
//! asking for the same key wait for its answer instead of evaluating it again.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Instant;

enum State<T> {
    Running,
    Done(T),
    /// The leader went away without an answer (it panicked): waiters evaluate themselves.
    Abandoned,
}

struct Flight<T> {
    state: Mutex<State<T>>,
    done: Condvar,
}

/// The evaluations in flight, by key.
pub struct Flights<K, T> {
    running: Mutex<HashMap<K, Arc<Flight<T>>>>,
}

/// What [`Flights::join`] makes of a caller.
pub enum Joined<'a, K: Hash + Eq + Clone, T: Clone> {
    /// Nobody evaluates the key: the caller does, and hands its answer to [`Leader::finish`].
    Leader(Leader<'a, K, T>),
    /// Somebody does: [`Follower::wait`] for the answer.
    Follower(Follower<T>),
}

pub struct Leader<'a, K: Hash + Eq + Clone, T: Clone> {
    flights: &'a Flights<K, T>,
    key: K,
    flight: Arc<Flight<T>>,
    finished: bool,
}

pub struct Follower<T> {
    flight: Arc<Flight<T>>,
}

fn lock<U>(m: &Mutex<U>) -> MutexGuard<'_, U> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl<K: Hash + Eq + Clone, T: Clone> Default for Flights<K, T> {
    fn default() -> Self {
        Flights {
            running: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Hash + Eq + Clone, T: Clone> Flights<K, T> {
    pub fn join(&self, key: &K) -> Joined<'_, K, T> {
        let mut running = lock(&self.running);
        if let Some(flight) = running.get(key) {
            return Joined::Follower(Follower {
                flight: Arc::clone(flight),
            });
        }
        let flight = Arc::new(Flight {
            state: Mutex::new(State::Running),
            done: Condvar::new(),
        });
        running.insert(key.clone(), Arc::clone(&flight));
        Joined::Leader(Leader {
            flights: self,
            key: key.clone(),
            flight,
            finished: false,
        })
    }

    /// How many keys are being evaluated now.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        lock(&self.running).len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<K: Hash + Eq + Clone, T: Clone> Leader<'_, K, T> {
    /// Hands `answer` to every waiter; later callers start a new evaluation.
    pub fn finish(mut self, answer: T) {
        self.end(State::Done(answer));
        self.finished = true;
    }

    fn end(&self, state: State<T>) {
        lock(&self.flights.running).remove(&self.key);
        *lock(&self.flight.state) = state;
        self.flight.done.notify_all();
    }
}

impl<K: Hash + Eq + Clone, T: Clone> Drop for Leader<'_, K, T> {
    fn drop(&mut self) {
        if !self.finished {
            self.end(State::Abandoned);
        }
    }
}

impl<T: Clone> Follower<T> {
    /// The leader's answer; `None` when `until` passed first or the leader gave up.
    pub fn wait(self, until: Instant) -> Option<T> {
        let mut state = lock(&self.flight.state);
        loop {
            match &*state {
                State::Done(answer) => return Some(answer.clone()),
                State::Abandoned => return None,
                State::Running => {}
            }
            let left = until.checked_duration_since(Instant::now())?;
            state = self
                .flight
                .done
                .wait_timeout(state, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[test]
    fn concurrent_callers_of_one_key_share_one_evaluation() {
        let flights: Arc<Flights<&'static str, u32>> = Arc::default();
        let evaluations = Arc::new(AtomicUsize::new(0));
        let barrier = Arc::new(std::sync::Barrier::new(16));
        let threads: Vec<_> = (0..16)
            .map(|_| {
                let (flights, evaluations, barrier) = (
                    Arc::clone(&flights),
                    Arc::clone(&evaluations),
                    Arc::clone(&barrier),
                );
                std::thread::spawn(move || {
                    barrier.wait();
                    match flights.join(&"k") {
                        Joined::Leader(l) => {
                            evaluations.fetch_add(1, Ordering::SeqCst);
                            // Long enough for every other thread to join.
                            std::thread::sleep(Duration::from_millis(200));
                            l.finish(7);
                            7
                        }
                        Joined::Follower(f) => f
                            .wait(Instant::now() + Duration::from_secs(10))
                            .expect("the leader's answer"),
                    }
                })
            })
            .collect();
        for t in threads {
            assert_eq!(t.join().expect("thread"), 7);
        }
        assert_eq!(evaluations.load(Ordering::SeqCst), 1);
        assert!(flights.is_empty());
    }

    #[test]
    fn a_follower_stops_at_its_deadline_and_a_leader_that_drops_frees_the_key() {
        let flights: Flights<u8, u8> = Flights::default();
        let Joined::Leader(leader) = flights.join(&1) else {
            panic!("first is the leader")
        };
        let Joined::Follower(follower) = flights.join(&1) else {
            panic!("second follows")
        };
        assert_eq!(
            follower.wait(Instant::now() + Duration::from_millis(20)),
            None
        );
        let Joined::Follower(follower) = flights.join(&1) else {
            panic!("still running")
        };
        drop(leader);
        assert_eq!(follower.wait(Instant::now() + Duration::from_secs(5)), None);
        assert!(matches!(flights.join(&1), Joined::Leader(_)));
    }
}
