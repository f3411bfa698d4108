//! Per-org fairness on one node: which org's job starts next, and how many
//! of each org's jobs run here. Pure.
//!
//! With SQLite the scheduler also holds the queue itself (jobs waiting, per
//! org). With PostgreSQL the queue is the database: the scheduler only says
//! which orgs may start a job now, in turn order, and counts what runs here.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

/// Which jobs wait, per org, what runs, and whose turn it is.
#[derive(Default)]
pub struct Scheduler {
    waiting: BTreeMap<String, VecDeque<String>>,
    running: HashMap<String, usize>,
    /// Orgs in turn order: the org served last goes to the back.
    turns: VecDeque<String>,
    /// Every job queued or running here, so a job is never run twice at once.
    known: HashSet<String>,
}

impl Scheduler {
    /// A scheduler whose turn order starts with `orgs` (for a shared queue,
    /// where the node cannot see which orgs have work until it asks).
    pub fn with_orgs(orgs: impl IntoIterator<Item = String>) -> Scheduler {
        Scheduler {
            turns: orgs.into_iter().collect(),
            ..Scheduler::default()
        }
    }

    /// Queues a job; false if it is queued or running already.
    pub fn push(&mut self, org: &str, id: &str) -> bool {
        if !self.known.insert(id.to_owned()) {
            return false;
        }
        self.waiting
            .entry(org.to_owned())
            .or_default()
            .push_back(id.to_owned());
        if !self.turns.iter().any(|o| o == org) {
            self.turns.push_back(org.to_owned());
        }
        true
    }

    /// The next queued job to start: from the first org in turn order with
    /// work and a free slot.
    pub fn next(&mut self, per_org: usize) -> Option<(String, String)> {
        let pos = self.turns.iter().position(|org| {
            self.waiting.get(org).is_some_and(|q| !q.is_empty()) && self.has_room(org, per_org)
        })?;
        let org = self.turns[pos].clone();
        let id = self
            .waiting
            .get_mut(&org)
            .and_then(VecDeque::pop_front)
            .expect("non-empty");
        self.count_start(&org);
        Some((org, id))
    }

    /// Orgs that may start a job now (fewer than `per_org` running here),
    /// in turn order.
    pub fn eligible(&self, per_org: usize) -> Vec<String> {
        self.turns
            .iter()
            .filter(|org| self.has_room(org, per_org))
            .cloned()
            .collect()
    }

    /// Counts a job started here that was not queued here (claimed from a
    /// shared queue); its org goes to the back of the turns. False if the
    /// job already runs here.
    pub fn started(&mut self, org: &str, id: &str) -> bool {
        if !self.known.insert(id.to_owned()) {
            return false;
        }
        self.count_start(org);
        true
    }

    /// A job started by [`next`](Self::next) or [`started`](Self::started)
    /// is over.
    pub fn done(&mut self, org: &str, id: &str) {
        if let Some(n) = self.running.get_mut(org) {
            *n = n.saturating_sub(1);
        }
        self.known.remove(id);
    }

    /// The ids of the jobs queued or running here (with a shared queue:
    /// running here), for claims to leave out.
    pub fn ids(&self) -> Vec<String> {
        self.known.iter().cloned().collect()
    }

    /// Jobs queued or running here.
    pub fn len(&self) -> usize {
        self.known.len()
    }

    /// Whether nothing is queued or running here.
    pub fn is_empty(&self) -> bool {
        self.known.is_empty()
    }

    fn has_room(&self, org: &str, per_org: usize) -> bool {
        self.running.get(org).copied().unwrap_or(0) < per_org
    }

    fn count_start(&mut self, org: &str) {
        *self.running.entry(org.to_owned()).or_default() += 1;
        self.turns.retain(|o| o != org);
        self.turns.push_back(org.to_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orgs_take_turns() {
        let mut s = Scheduler::default();
        for i in 0..5 {
            s.push("big", &format!("b{i}"));
        }
        s.push("small", "s0");
        s.push("small", "s1");
        assert!(!s.push("small", "s1"), "a queued job is not queued twice");
        let order: Vec<String> = std::iter::from_fn(|| s.next(10).map(|(_, id)| id)).collect();
        assert_eq!(order, ["b0", "s0", "b1", "s1", "b2", "b3", "b4"]);
    }

    #[test]
    fn per_org_limit() {
        let mut s = Scheduler::default();
        for i in 0..3 {
            s.push("a", &format!("a{i}"));
        }
        s.push("b", "b0");
        assert_eq!(s.next(1).unwrap().1, "a0");
        assert_eq!(s.next(1).unwrap().1, "b0");
        assert_eq!(s.next(1), None, "a has one running already");
        s.done("a", "a0");
        assert_eq!(s.next(1).unwrap().1, "a1");
        assert_eq!(s.len(), 3);
    }

    #[test]
    fn a_shared_queue_is_asked_in_turn_order_within_the_limit() {
        let mut s = Scheduler::with_orgs(["a".to_owned(), "b".to_owned(), "c".to_owned()]);
        assert_eq!(s.eligible(2), ["a", "b", "c"]);
        assert!(s.started("a", "a0"));
        assert!(
            !s.started("a", "a0"),
            "a job running here is not counted twice"
        );
        assert_eq!(s.eligible(2), ["b", "c", "a"], "a served: to the back");
        assert!(s.started("a", "a1"));
        assert_eq!(s.eligible(2), ["b", "c"], "a is at its limit");
        assert!(s.started("c", "c0"));
        assert_eq!(s.eligible(2), ["b", "c"]);
        s.done("a", "a0");
        assert_eq!(s.eligible(2), ["b", "a", "c"]);
        assert_eq!(s.len(), 2);
        let mut ids = s.ids();
        ids.sort();
        assert_eq!(ids, ["a1", "c0"]);
        assert!(!s.is_empty());
        // An org seen only in a claim joins the turns.
        assert!(s.started("d", "d0"));
        assert_eq!(s.eligible(2), ["b", "a", "c", "d"]);
        assert_eq!(s.eligible(1), ["b"]);
    }
}
