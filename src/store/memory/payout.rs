//! One account's payouts in the memory store, changed only under the account's lock, by the
//! Redis store's rules (see `payout_*.lua`).

use crate::store::payout::{
    kept_error, CreatedPayout, NewPayout, Payout, PayoutAction, PayoutActionRefused, PayoutEnd, PayoutState,
    PAYOUT_RETENTION,
};
use std::collections::HashMap;
use std::time::SystemTime;

#[derive(Debug, Default)]
pub(super) struct Payouts {
    by_id: HashMap<String, Record>,
}

#[derive(Debug)]
struct Record {
    payout: Payout,
    /// The lease: owner and end.
    lease: Option<(String, SystemTime)>,
}

impl Payouts {
    /// Ended payouts past their retention are forgotten, as Redis expires them.
    fn forget_ended(&mut self, now: SystemTime) {
        self.by_id.retain(|_, r| {
            let ended = matches!(r.payout.state, PayoutState::Paid | PayoutState::Refunded);
            !ended || now.duration_since(r.payout.updated_at).unwrap_or_default() < PAYOUT_RETENTION
        });
    }

    pub(super) fn get(&mut self, id: &str, now: SystemTime) -> Option<Payout> {
        self.forget_ended(now);
        self.by_id.get(id).map(|r| r.payout.clone())
    }

    /// The payout `new` would create, if its id is free (the caller debits and then inserts).
    pub(super) fn existing(&mut self, id: &str, now: SystemTime) -> Option<CreatedPayout> {
        self.get(id, now).map(CreatedPayout::Exists)
    }

    pub(super) fn insert(&mut self, account: &str, new: &NewPayout, now: SystemTime) -> Payout {
        let payout = Payout {
            id: new.id.clone(),
            account: account.to_string(),
            id_type: new.id_type.clone(),
            id_value: new.id_value.clone(),
            fsp_id: new.fsp_id.clone(),
            currency: new.currency.clone(),
            amount: new.amount,
            state: PayoutState::Pending,
            attempt: 1,
            reference: None,
            earlier_references: Vec::new(),
            error: None,
            created_at: now,
            updated_at: now,
        };
        self.by_id.insert(new.id.clone(), Record { payout: payout.clone(), lease: None });
        payout
    }

    pub(super) fn open(&self, limit: usize) -> Vec<Payout> {
        let mut open: Vec<Payout> = self
            .by_id
            .values()
            .map(|r| r.payout.clone())
            .filter(|p| matches!(p.state, PayoutState::Pending | PayoutState::Failed))
            .collect();
        open.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        open.truncate(limit);
        open
    }

    pub(super) fn claim(
        &mut self,
        id: &str,
        owner: &str,
        now: SystemTime,
        until: SystemTime,
    ) -> Option<Payout> {
        let record = self.by_id.get_mut(id).filter(|r| r.payout.state == PayoutState::Pending)?;
        if let Some((holder, end)) = &record.lease {
            if holder != owner && *end > now {
                return None;
            }
        }
        record.lease = Some((owner.to_string(), until));
        Some(record.payout.clone())
    }

    fn held<'a>(&'a mut self, id: &str, owner: &str) -> Option<&'a mut Record> {
        self.by_id.get_mut(id).filter(|r| {
            r.payout.state == PayoutState::Pending
                && r.lease.as_ref().is_some_and(|(holder, _)| holder == owner)
        })
    }

    pub(super) fn set_reference(&mut self, id: &str, owner: &str, reference: &str) -> Option<String> {
        let record = self.held(id, owner)?;
        Some(record.payout.reference.get_or_insert_with(|| reference.to_string()).clone())
    }

    pub(super) fn finish(
        &mut self,
        id: &str,
        owner: &str,
        end: &PayoutEnd,
        now: SystemTime,
    ) -> Option<Payout> {
        let record = self.held(id, owner)?;
        record.lease = None;
        let payout = &mut record.payout;
        payout.updated_at = now;
        match end {
            PayoutEnd::Paid => payout.state = PayoutState::Paid,
            PayoutEnd::Failed(reason) => {
                if let Some(reference) = payout.reference.take() {
                    payout.earlier_references.push(reference);
                }
                payout.state = PayoutState::Failed;
                payout.error = Some(kept_error(reason));
            }
        }
        Some(payout.clone())
    }

    /// Checks an operator's action; the caller applies a refund's credit, then [`Self::acted`].
    pub(super) fn check_action(&mut self, id: &str, now: SystemTime) -> Result<Payout, PayoutActionRefused> {
        let payout = self.get(id, now).ok_or(PayoutActionRefused::Unknown)?;
        match payout.state {
            PayoutState::Failed => Ok(payout),
            _ => Err(PayoutActionRefused::NotFailed(Box::new(payout))),
        }
    }

    pub(super) fn acted(&mut self, id: &str, action: PayoutAction, now: SystemTime) -> Payout {
        let payout = &mut self.by_id.get_mut(id).expect("checked").payout;
        payout.updated_at = now;
        match action {
            PayoutAction::Retry => {
                payout.state = PayoutState::Pending;
                payout.attempt += 1;
            }
            PayoutAction::Refund => payout.state = PayoutState::Refunded,
        }
        payout.clone()
    }
}
