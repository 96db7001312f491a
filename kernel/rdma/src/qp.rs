//! The verbs rules for QPs that the driver checks before the NIC sees a command: queue
//! sizes at creation, and `ib_modify_qp_is_ok`'s state table with the value checks of
//! a modify.
//!
//! The table is Linux's (`qp_state_table` in `drivers/infiniband/core/verbs.c`)
//! restricted to the transitions this NIC has: RESET→INIT, INIT→INIT, INIT→RTR,
//! RTR→RTS, RTS→RTS, and any state to RESET or ERR, except RESET→ERR, which Linux's
//! table does not allow either. SQD and SQE are not modelled. "If any of the modify
//! attributes or the modify mask are invalid, none of the attributes will be modified":
//! every check runs before the command.

use sagrada_hw_rnic_abi::cmd::QpAttr;
use sagrada_hw_rnic_abi::verbs::{Mtu, QpState, QpType, access, attr_mask as m};
use sagrada_kernel_core::{Errno, KResult};

/// `IB_QP_ATTR_STANDARD_BITS`: the mask bits of `ibv_modify_qp`.
const STANDARD_BITS: u32 = (1 << 21) - 1;
/// The mask bits the NIC's [`QpAttr`] carries (the rest are stripped before the
/// command: `PATH_MIG_STATE` has no field and no effect on a NIC without APM).
const NIC_BITS: u32 = m::STATE
    | m::CUR_STATE
    | m::ACCESS_FLAGS
    | m::PKEY_INDEX
    | m::PORT
    | m::QKEY
    | m::AV
    | m::PATH_MTU
    | m::TIMEOUT
    | m::RETRY_CNT
    | m::RNR_RETRY
    | m::RQ_PSN
    | m::MAX_QP_RD_ATOMIC
    | m::MIN_RNR_TIMER
    | m::SQ_PSN
    | m::MAX_DEST_RD_ATOMIC
    | m::DEST_QPN;
/// The access flags a QP takes for incoming operations.
const QP_ACCESS: u32 =
    access::LOCAL_WRITE | access::REMOTE_WRITE | access::REMOTE_READ | access::REMOTE_ATOMIC;
/// PSNs are 24 bits.
const PSN_MASK: u32 = 0x00ff_ffff;

/// The attributes a transition requires and those it also accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Transition {
    pub required: u32,
    pub optional: u32,
}

const fn t(required: u32, optional: u32) -> Option<Transition> {
    Some(Transition { required, optional })
}

/// The entry of the state table for `cur` → `next` on a QP of type `ty`, `None` if the
/// transition is not allowed.
pub(crate) fn transition(cur: QpState, next: QpState, ty: QpType) -> Option<Transition> {
    use QpState::{Err as Error, Init, Reset, Rtr, Rts};
    use QpType::{Rc, Uc, Ud};
    let connected = matches!(ty, Rc | Uc);
    match (cur, next) {
        (Reset, Reset) => t(0, 0),
        (Reset, Init) => t(
            m::PKEY_INDEX | m::PORT | if connected { m::ACCESS_FLAGS } else { m::QKEY },
            0,
        ),
        (Reset, _) => None,
        (_, Reset | Error) => t(0, 0),
        (Init, Init) => t(
            0,
            m::PKEY_INDEX | m::PORT | if connected { m::ACCESS_FLAGS } else { m::QKEY },
        ),
        (Init, Rtr) => match ty {
            Rc => t(
                m::AV
                    | m::PATH_MTU
                    | m::DEST_QPN
                    | m::RQ_PSN
                    | m::MAX_DEST_RD_ATOMIC
                    | m::MIN_RNR_TIMER,
                m::ALT_PATH | m::ACCESS_FLAGS | m::PKEY_INDEX,
            ),
            Uc => t(
                m::AV | m::PATH_MTU | m::DEST_QPN | m::RQ_PSN,
                m::ALT_PATH | m::ACCESS_FLAGS | m::PKEY_INDEX,
            ),
            Ud => t(0, m::PKEY_INDEX | m::QKEY),
        },
        (Rtr, Rts) => match ty {
            Rc => t(
                m::TIMEOUT | m::RETRY_CNT | m::RNR_RETRY | m::SQ_PSN | m::MAX_QP_RD_ATOMIC,
                m::CUR_STATE | m::ALT_PATH | m::ACCESS_FLAGS | m::MIN_RNR_TIMER | m::PATH_MIG_STATE,
            ),
            Uc => t(
                m::SQ_PSN,
                m::CUR_STATE | m::ALT_PATH | m::ACCESS_FLAGS | m::PATH_MIG_STATE,
            ),
            Ud => t(m::SQ_PSN, m::CUR_STATE | m::QKEY),
        },
        (Rts, Rts) => match ty {
            Rc => t(
                0,
                m::CUR_STATE | m::ACCESS_FLAGS | m::ALT_PATH | m::PATH_MIG_STATE | m::MIN_RNR_TIMER,
            ),
            Uc => t(
                0,
                m::CUR_STATE | m::ACCESS_FLAGS | m::ALT_PATH | m::PATH_MIG_STATE,
            ),
            Ud => t(0, m::CUR_STATE | m::QKEY),
        },
        _ => None,
    }
}

/// `ib_modify_qp_is_ok`: the transition exists, `CUR_STATE` is only given where it
/// means something, every required attribute is in `mask` and nothing but the
/// required, the optional and `STATE`.
pub(crate) fn modify_is_ok(cur: QpState, next: QpState, ty: QpType, mask: u32) -> bool {
    if mask & m::CUR_STATE != 0
        && !matches!(
            cur,
            QpState::Rtr | QpState::Rts | QpState::Sqd | QpState::Sqe
        )
    {
        return false;
    }
    let Some(tr) = transition(cur, next, ty) else {
        return false;
    };
    mask & tr.required == tr.required && mask & !(tr.required | tr.optional | m::STATE) == 0
}

/// What a modify may ask for, from the device and port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Limits {
    /// `max_qp_init_rd_atom`.
    pub max_rd_atomic: u32,
    /// `max_qp_rd_atom`.
    pub max_dest_rd_atomic: u32,
    /// The port's largest MTU ([`Mtu`] value).
    pub max_mtu: u8,
    /// Entries of the port's GID table.
    pub gid_tbl_len: u32,
}

/// A modify that passed every check: what to send to the NIC and the state it leads to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Checked {
    pub attr: QpAttr,
    pub mask: u32,
    pub next: QpState,
}

fn round_rd_atomic(v: u8, max: u32) -> KResult<u8> {
    if u32::from(v) > max {
        return Err(Errno::EINVAL);
    }
    // As rxe: a power of two (a query then returns at least what was asked).
    let rounded = if v == 0 { 0 } else { v.next_power_of_two() };
    Ok(u32::from(rounded).min(max) as u8)
}

/// `EOPNOTSUPP` for mask bits `ibv_modify_qp` does not have (checked before anything
/// else, even the QP handle).
pub(crate) fn check_mask_bits(mask: u32) -> KResult<()> {
    if mask & !(STANDARD_BITS | m::RATE_LIMIT) != 0 {
        return Err(Errno::EOPNOTSUPP);
    }
    Ok(())
}

/// Every check of a modify of a QP of type `ty` whose current state is `known`, in
/// Linux's order: unknown mask bits (`EOPNOTSUPP`), states out of range, the state
/// table, then the values; everything else is `EINVAL`. A `CUR_STATE` other than
/// `known` is `EINVAL` (the caller refreshes `known` from the NIC first).
pub(crate) fn check_modify(
    ty: QpType,
    known: QpState,
    attr: &QpAttr,
    mask: u32,
    limits: &Limits,
) -> KResult<Checked> {
    check_mask_bits(mask)?;
    if mask & m::PORT != 0 && attr.port_num != 1 {
        return Err(Errno::EINVAL);
    }
    let cur = if mask & m::CUR_STATE != 0 {
        QpState::from_raw(attr.cur_qp_state).ok_or(Errno::EINVAL)?
    } else {
        known
    };
    let next = if mask & m::STATE != 0 {
        QpState::from_raw(attr.qp_state).ok_or(Errno::EINVAL)?
    } else {
        cur
    };
    if cur != known || !modify_is_ok(cur, next, ty, mask) {
        return Err(Errno::EINVAL);
    }
    // RoCE: no alternate paths (`_ib_modify_qp`).
    if mask & m::ALT_PATH != 0 {
        return Err(Errno::EINVAL);
    }
    let mut out = *attr;
    if mask & m::PKEY_INDEX != 0 && attr.pkey_index != 0 {
        return Err(Errno::EINVAL);
    }
    if mask & m::ACCESS_FLAGS != 0 && attr.qp_access_flags & !QP_ACCESS != 0 {
        return Err(Errno::EINVAL);
    }
    if mask & m::AV != 0
        && (attr.dgid == [0; 16] || u32::from(attr.sgid_index) >= limits.gid_tbl_len.max(1))
    {
        return Err(Errno::EINVAL);
    }
    if mask & m::PATH_MTU != 0 {
        let mtu = Mtu::from_raw(attr.path_mtu).ok_or(Errno::EINVAL)?;
        if mtu as u8 > limits.max_mtu {
            return Err(Errno::EINVAL);
        }
    }
    if mask & m::DEST_QPN != 0 && attr.dest_qp_num & !PSN_MASK != 0 {
        return Err(Errno::EINVAL);
    }
    if mask & m::TIMEOUT != 0 && attr.timeout > 31 {
        return Err(Errno::EINVAL);
    }
    if mask & m::RETRY_CNT != 0 && attr.retry_cnt > 7 {
        return Err(Errno::EINVAL);
    }
    if mask & m::RNR_RETRY != 0 && attr.rnr_retry > 7 {
        return Err(Errno::EINVAL);
    }
    if mask & m::MIN_RNR_TIMER != 0 && attr.min_rnr_timer > 31 {
        return Err(Errno::EINVAL);
    }
    if mask & m::MAX_QP_RD_ATOMIC != 0 {
        out.max_rd_atomic = round_rd_atomic(attr.max_rd_atomic, limits.max_rd_atomic)?;
    }
    if mask & m::MAX_DEST_RD_ATOMIC != 0 {
        out.max_dest_rd_atomic =
            round_rd_atomic(attr.max_dest_rd_atomic, limits.max_dest_rd_atomic)?;
    }
    // As the core does for IB and RoCE: PSNs are masked to 24 bits, not refused (the
    // core warns; a user could flood the log, so this is a debug message).
    if mask & m::RQ_PSN != 0 && attr.rq_psn & !PSN_MASK != 0 {
        tracing::debug!("rdma: rq_psn {:#x} overflows 24 bits, masking", attr.rq_psn);
        out.rq_psn &= PSN_MASK;
    }
    if mask & m::SQ_PSN != 0 && attr.sq_psn & !PSN_MASK != 0 {
        tracing::debug!("rdma: sq_psn {:#x} overflows 24 bits, masking", attr.sq_psn);
        out.sq_psn &= PSN_MASK;
    }
    out.qp_state = next as u8;
    out.cur_qp_state = cur as u8;
    Ok(Checked {
        attr: out,
        mask: mask & NIC_BITS,
        next,
    })
}

/// Entries of a work queue for `wanted` work requests: a power of two, at least one.
/// `EINVAL` beyond `max`.
pub(crate) fn queue_entries(wanted: u32, max: u32) -> KResult<u32> {
    if wanted > max {
        return Err(Errno::EINVAL);
    }
    wanted
        .max(1)
        .checked_next_power_of_two()
        .ok_or(Errno::EINVAL)
}

#[cfg(test)]
mod tests {
    use super::*;
    use QpState::{Init, Reset, Rtr, Rts, Sqd, Sqe};
    const ERR: QpState = QpState::Err;

    const LIMITS: Limits = Limits {
        max_rd_atomic: 16,
        max_dest_rd_atomic: 16,
        max_mtu: Mtu::Mtu4096 as u8,
        gid_tbl_len: 1,
    };

    /// A complete set of valid attributes (what rdma-core's tests use).
    fn attr(state: QpState) -> QpAttr {
        QpAttr {
            dgid: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 2],
            qkey: 0x1111_1111,
            rq_psn: 0x1234,
            sq_psn: 0x4321,
            dest_qp_num: 17,
            qp_access_flags: access::LOCAL_WRITE | access::REMOTE_WRITE,
            pkey_index: 0,
            qp_state: state as u8,
            cur_qp_state: 0,
            path_mtu: Mtu::Mtu1024 as u8,
            port_num: 1,
            max_rd_atomic: 1,
            max_dest_rd_atomic: 1,
            min_rnr_timer: 12,
            timeout: 14,
            retry_cnt: 7,
            rnr_retry: 7,
            sgid_index: 0,
            hop_limit: 64,
            pad: [0; 2],
        }
    }

    /// The masks `ibv_modify_qp(3)` gives for each step of bringing up an RC QP.
    const RC_STEPS: [(QpState, QpState, u32); 3] = [
        (
            Reset,
            Init,
            m::STATE | m::PKEY_INDEX | m::PORT | m::ACCESS_FLAGS,
        ),
        (
            Init,
            Rtr,
            m::STATE
                | m::AV
                | m::PATH_MTU
                | m::DEST_QPN
                | m::RQ_PSN
                | m::MAX_DEST_RD_ATOMIC
                | m::MIN_RNR_TIMER,
        ),
        (
            Rtr,
            Rts,
            m::STATE | m::SQ_PSN | m::MAX_QP_RD_ATOMIC | m::RETRY_CNT | m::RNR_RETRY | m::TIMEOUT,
        ),
    ];

    fn check(ty: QpType, known: QpState, a: &QpAttr, mask: u32) -> KResult<Checked> {
        check_modify(ty, known, a, mask, &LIMITS)
    }

    #[test]
    fn the_rc_bring_up_passes_and_lands_in_each_state() {
        for (cur, next, mask) in RC_STEPS {
            let c = check(QpType::Rc, cur, &attr(next), mask).unwrap();
            assert_eq!(c.next, next);
            assert_eq!(c.attr.qp_state, next as u8);
            assert_eq!(c.mask, mask);
        }
    }

    #[test]
    fn every_missing_required_attribute_of_an_rc_step_is_einval() {
        for (cur, next, mask) in RC_STEPS {
            for bit in 0..32 {
                let bit = 1u32 << bit;
                if mask & bit == 0 {
                    continue;
                }
                assert_eq!(
                    check(QpType::Rc, cur, &attr(next), mask & !bit),
                    Err(Errno::EINVAL),
                    "{cur}->{next} without {bit:#x}"
                );
            }
        }
    }

    #[test]
    fn an_attribute_the_step_does_not_take_is_einval() {
        // RESET->INIT with a PSN; INIT->RTR with SQ attributes; RTR->RTS with an AV.
        let extra = [m::RQ_PSN, m::SQ_PSN | m::TIMEOUT, m::AV, m::QKEY];
        for (i, (cur, next, mask)) in RC_STEPS.into_iter().enumerate() {
            assert_eq!(
                check(QpType::Rc, cur, &attr(next), mask | extra[i]),
                Err(Errno::EINVAL)
            );
            // CAP is never modifiable here; RATE_LIMIT is for raw packet QPs.
            assert_eq!(
                check(QpType::Rc, cur, &attr(next), mask | m::CAP),
                Err(Errno::EINVAL)
            );
            assert_eq!(
                check(QpType::Rc, cur, &attr(next), mask | m::RATE_LIMIT),
                Err(Errno::EINVAL)
            );
        }
        // Bits beyond the standard ones are not supported at all.
        assert_eq!(
            check(QpType::Rc, Reset, &attr(Init), RC_STEPS[0].2 | 1 << 22),
            Err(Errno::EOPNOTSUPP)
        );
    }

    #[test]
    fn optional_attributes_are_accepted() {
        let a = attr(Rtr);
        let mask = RC_STEPS[1].2 | m::ACCESS_FLAGS | m::PKEY_INDEX;
        assert!(check(QpType::Rc, Init, &a, mask).is_ok());
        let mask = RC_STEPS[2].2 | m::MIN_RNR_TIMER | m::ACCESS_FLAGS | m::PATH_MIG_STATE;
        let c = check(QpType::Rc, Rtr, &attr(Rts), mask).unwrap();
        assert_eq!(c.mask & m::PATH_MIG_STATE, 0, "not passed to the NIC");
        // RTS->RTS with only optional attributes, and with none.
        assert!(check(QpType::Rc, Rts, &attr(Rts), m::STATE | m::MIN_RNR_TIMER).is_ok());
        assert!(check(QpType::Rc, Rts, &attr(Rts), m::STATE).is_ok());
        // INIT->INIT with none of its optional attributes, and without the STATE bit.
        assert!(check(QpType::Rc, Init, &attr(Init), m::STATE).is_ok());
        let c = check(QpType::Rc, Init, &attr(Reset), m::PORT).unwrap();
        assert_eq!(c.next, Init, "no STATE bit: the state stays");
    }

    #[test]
    fn transitions_outside_the_table_are_einval() {
        let all = [Reset, Init, Rtr, Rts, Sqd, Sqe, ERR];
        let allowed = |cur: QpState, next: QpState| {
            matches!(
                (cur, next),
                (Reset, Reset | Init) | (Init, Init | Rtr) | (Rtr, Rts) | (Rts, Rts)
            ) || (cur != Reset && matches!(next, Reset | QpState::Err))
        };
        for cur in all {
            for next in all {
                let tr = transition(cur, next, QpType::Rc);
                assert_eq!(tr.is_some(), allowed(cur, next), "{cur}->{next}");
            }
        }
        // Skipping a step, going back, RESET->ERR (not in Linux's table either).
        for (cur, next) in [
            (Reset, Rtr),
            (Init, Rts),
            (Rts, Rtr),
            (Rtr, Init),
            (Reset, ERR),
        ] {
            assert_eq!(
                check(QpType::Rc, cur, &attr(next), RC_STEPS[2].2 | RC_STEPS[1].2),
                Err(Errno::EINVAL),
                "{cur}->{next}"
            );
            assert_eq!(
                check(QpType::Rc, cur, &attr(next), m::STATE),
                Err(Errno::EINVAL)
            );
        }
        // To RESET or ERR only the STATE bit is allowed.
        for cur in [Init, Rtr, Rts, ERR] {
            assert!(check(QpType::Rc, cur, &attr(ERR), m::STATE).is_ok());
            assert!(check(QpType::Rc, cur, &attr(Reset), m::STATE).is_ok());
            assert_eq!(
                check(QpType::Rc, cur, &attr(ERR), m::STATE | m::PORT),
                Err(Errno::EINVAL)
            );
        }
        // A state value beyond ERR.
        let mut a = attr(Init);
        a.qp_state = 7;
        assert_eq!(
            check(QpType::Rc, Reset, &a, RC_STEPS[0].2),
            Err(Errno::EINVAL)
        );
    }

    #[test]
    fn cur_state_must_be_allowed_and_match() {
        let mut a = attr(Rts);
        a.cur_qp_state = Rtr as u8;
        let mask = RC_STEPS[2].2 | m::CUR_STATE;
        assert!(check(QpType::Rc, Rtr, &a, mask).is_ok());
        assert_eq!(
            check(QpType::Rc, Rts, &a, mask),
            Err(Errno::EINVAL),
            "stale"
        );
        // Not with RESET or INIT as current state.
        let mut a = attr(Init);
        a.cur_qp_state = Reset as u8;
        assert_eq!(
            check(QpType::Rc, Reset, &a, RC_STEPS[0].2 | m::CUR_STATE),
            Err(Errno::EINVAL)
        );
    }

    #[test]
    fn uc_and_ud_have_their_own_masks() {
        let uc = [
            (
                Reset,
                Init,
                m::STATE | m::PKEY_INDEX | m::PORT | m::ACCESS_FLAGS,
            ),
            (
                Init,
                Rtr,
                m::STATE | m::AV | m::PATH_MTU | m::DEST_QPN | m::RQ_PSN,
            ),
            (Rtr, Rts, m::STATE | m::SQ_PSN),
        ];
        let ud = [
            (Reset, Init, m::STATE | m::PKEY_INDEX | m::PORT | m::QKEY),
            (Init, Rtr, m::STATE),
            (Rtr, Rts, m::STATE | m::SQ_PSN),
        ];
        for (ty, steps) in [(QpType::Uc, uc), (QpType::Ud, ud)] {
            for (cur, next, mask) in steps {
                assert!(
                    check(ty, cur, &attr(next), mask).is_ok(),
                    "{ty} {cur}->{next}"
                );
                // From bit 1: without STATE, UD's INIT->RTR is a valid INIT->INIT no-op.
                for bit in 1..32 {
                    let bit = 1u32 << bit;
                    if mask & bit != 0 {
                        assert!(check(ty, cur, &attr(next), mask & !bit).is_err());
                    }
                }
            }
        }
        // UC takes no RC-only attributes, UD no access flags or AV.
        assert!(check(QpType::Uc, Init, &attr(Rtr), uc[1].2 | m::MIN_RNR_TIMER).is_err());
        assert!(check(QpType::Ud, Reset, &attr(Init), ud[0].2 | m::ACCESS_FLAGS).is_err());
        assert!(check(QpType::Ud, Init, &attr(Rtr), m::STATE | m::AV).is_err());
    }

    #[test]
    fn values_are_checked() {
        let (cur, next, mask) = RC_STEPS[1];
        let bad: [fn(&mut QpAttr); 6] = [
            |a| a.dgid = [0; 16],
            |a| a.sgid_index = 1,
            |a| a.path_mtu = 0,
            |a| a.path_mtu = 6,
            |a| a.max_dest_rd_atomic = 17,
            |a| a.min_rnr_timer = 32,
        ];
        for f in bad {
            let mut a = attr(next);
            f(&mut a);
            assert_eq!(
                check(QpType::Rc, cur, &a, mask),
                Err(Errno::EINVAL),
                "{a:?}"
            );
        }
        let mut a = attr(next);
        a.dest_qp_num = 1 << 24;
        assert_eq!(check(QpType::Rc, cur, &a, mask), Err(Errno::EINVAL));
        let limits = Limits {
            max_mtu: Mtu::Mtu1024 as u8,
            ..LIMITS
        };
        let mut a = attr(next);
        a.path_mtu = Mtu::Mtu2048 as u8;
        assert_eq!(
            check_modify(QpType::Rc, cur, &a, mask, &limits),
            Err(Errno::EINVAL)
        );

        let (cur, next, mask) = RC_STEPS[2];
        let bad: [fn(&mut QpAttr); 4] = [
            |a| a.timeout = 32,
            |a| a.retry_cnt = 8,
            |a| a.rnr_retry = 8,
            |a| a.max_rd_atomic = 17,
        ];
        for f in bad {
            let mut a = attr(next);
            f(&mut a);
            assert_eq!(
                check(QpType::Rc, cur, &a, mask),
                Err(Errno::EINVAL),
                "{a:?}"
            );
        }

        let (cur, next, mask) = RC_STEPS[0];
        let bad: [fn(&mut QpAttr); 3] = [
            |a| a.port_num = 2,
            |a| a.pkey_index = 1,
            |a| a.qp_access_flags = access::MW_BIND,
        ];
        for f in bad {
            let mut a = attr(next);
            f(&mut a);
            assert_eq!(
                check(QpType::Rc, cur, &a, mask),
                Err(Errno::EINVAL),
                "{a:?}"
            );
        }
    }

    #[test]
    fn rd_atomic_rounds_up_and_psns_are_masked() {
        let (cur, next, mask) = RC_STEPS[2];
        let mut a = attr(next);
        a.max_rd_atomic = 12;
        a.sq_psn = 0x0100_0005;
        let c = check(QpType::Rc, cur, &a, mask).unwrap();
        assert_eq!(c.attr.max_rd_atomic, 16);
        assert_eq!(c.attr.sq_psn, 5);
        let (cur, next, mask) = RC_STEPS[1];
        let mut a = attr(next);
        a.max_dest_rd_atomic = 3;
        assert_eq!(
            check(QpType::Rc, cur, &a, mask)
                .unwrap()
                .attr
                .max_dest_rd_atomic,
            4
        );
        a.max_dest_rd_atomic = 0;
        assert_eq!(
            check(QpType::Rc, cur, &a, mask)
                .unwrap()
                .attr
                .max_dest_rd_atomic,
            0
        );
    }

    #[test]
    fn queues_round_up_to_powers_of_two() {
        assert_eq!(queue_entries(0, 1 << 14), Ok(1));
        assert_eq!(queue_entries(1, 1 << 14), Ok(1));
        assert_eq!(queue_entries(100, 1 << 14), Ok(128));
        assert_eq!(queue_entries(1 << 14, 1 << 14), Ok(1 << 14));
        assert_eq!(queue_entries((1 << 14) + 1, 1 << 14), Err(Errno::EINVAL));
    }
}
