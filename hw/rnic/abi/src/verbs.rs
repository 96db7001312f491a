//! The verbs enumerations, with the values libibverbs gives them (`verbs.h`), so that
//! entries written by the NIC and the provider read the same in every layer.

/// `IBV_ACCESS_*`: memory-region and QP access flags.
pub mod access {
    /// The NIC may write the region locally (receives, READ responses, atomics' results).
    pub const LOCAL_WRITE: u32 = 1 << 0;
    /// Remote peers may RDMA WRITE it.
    pub const REMOTE_WRITE: u32 = 1 << 1;
    /// Remote peers may RDMA READ it.
    pub const REMOTE_READ: u32 = 1 << 2;
    /// Remote peers may run atomics on it.
    pub const REMOTE_ATOMIC: u32 = 1 << 3;
    /// Memory windows may be bound to it.
    pub const MW_BIND: u32 = 1 << 4;
    /// Addresses of the region start at 0.
    pub const ZERO_BASED: u32 = 1 << 5;
    /// On-demand paging.
    pub const ON_DEMAND: u32 = 1 << 6;
    /// Huge pages hint.
    pub const HUGETLB: u32 = 1 << 7;
    /// Relaxed PCIe ordering (an optional flag: ignored where not supported).
    pub const RELAXED_ORDERING: u32 = 1 << 20;
    /// Any remote access.
    pub const REMOTE: u32 = REMOTE_WRITE | REMOTE_READ | REMOTE_ATOMIC;
    /// The flags a dma-buf region accepts (`uverbs_std_types_mr.c`).
    pub const DMABUF_ALLOWED: u32 =
        LOCAL_WRITE | REMOTE_WRITE | REMOTE_READ | REMOTE_ATOMIC | RELAXED_ORDERING;
}

/// `IBV_SEND_*`: send flags of a work request.
pub mod send_flags {
    /// Wait for earlier READs and atomics to complete first.
    pub const FENCE: u8 = 1 << 0;
    /// Produce a completion on success too.
    pub const SIGNALED: u8 = 1 << 1;
    /// Set the solicited-event bit.
    pub const SOLICITED: u8 = 1 << 2;
    /// The payload is in the work request itself.
    pub const INLINE: u8 = 1 << 3;
}

macro_rules! enumeration {
    ($(#[$m:meta])* $name:ident : $repr:ty { $($(#[$vm:meta])* $v:ident = $n:expr => $s:expr,)* }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr($repr)]
        pub enum $name { $($(#[$vm])* $v = $n,)* }

        impl $name {
            /// Every value.
            pub const ALL: &[$name] = &[$($name::$v,)*];

            /// The value for a raw number, if it is one.
            pub fn from_raw(v: $repr) -> Option<Self> {
                match v { $($n => Some($name::$v),)* _ => None }
            }

            /// Its description, as rdma-core's tests print it.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$v => $s,)* }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

enumeration! {
    /// `enum ibv_wr_opcode`.
    WrOpcode: u8 {
        /// RDMA WRITE.
        RdmaWrite = 0 => "RDMA write",
        /// RDMA WRITE with immediate data (consumes a receive at the target).
        RdmaWriteWithImm = 1 => "RDMA write with immediate",
        /// SEND.
        Send = 2 => "send",
        /// SEND with immediate data.
        SendWithImm = 3 => "send with immediate",
        /// RDMA READ.
        RdmaRead = 4 => "RDMA read",
        /// 64-bit compare and swap.
        AtomicCmpAndSwp = 5 => "atomic compare and swap",
        /// 64-bit fetch and add.
        AtomicFetchAndAdd = 6 => "atomic fetch and add",
    }
}

enumeration! {
    /// `enum ibv_wc_opcode`.
    WcOpcode: u8 {
        /// A SEND (with or without immediate) completed.
        Send = 0 => "send",
        /// An RDMA WRITE (with or without immediate) completed.
        RdmaWrite = 1 => "RDMA write",
        /// An RDMA READ completed.
        RdmaRead = 2 => "RDMA read",
        /// A compare-and-swap completed.
        CompSwap = 3 => "compare and swap",
        /// A fetch-and-add completed.
        FetchAdd = 4 => "fetch and add",
        /// A receive consumed by a SEND.
        Recv = 128 => "receive",
        /// A receive consumed by an RDMA WRITE with immediate.
        RecvRdmaWithImm = 129 => "receive RDMA with immediate",
    }
}

enumeration! {
    /// `enum ibv_wc_status`, with the strings of rdma-core's tests (`wc_status_to_str`).
    WcStatus: u8 {
        /// Success.
        Success = 0 => "Success",
        /// A receive buffer was too small, or a message longer than the port allows.
        LocLenErr = 1 => "Local length error",
        /// An internal QP consistency error.
        LocQpOpErr = 2 => "local QP operation error",
        /// EE context error (unused: no RD).
        LocEecOpErr = 3 => "Local EEC operation error",
        /// A local lkey, PD or range check failed.
        LocProtErr = 4 => "Local protection error",
        /// The QP was in the error state: the work request was flushed.
        WrFlushErr = 5 => "WR flush error",
        /// Memory-window bind failed.
        MwBindErr = 6 => "Memory bind operation error",
        /// The responder answered with an unexpected opcode.
        BadRespErr = 7 => "Bad response error",
        /// A protection error on a local data buffer during an RDMA WRITE with immediate.
        LocAccessErr = 8 => "Local access error",
        /// The responder found the request invalid.
        RemInvReqErr = 9 => "Remote invalidate request error",
        /// The responder refused the rkey, range or access.
        RemAccessErr = 10 => "Remote access error",
        /// The responder could not complete the operation (its receive was unusable).
        RemOpErr = 11 => "Remote operation error",
        /// No acknowledgement within the retry count.
        RetryExcErr = 12 => "Retry exceeded",
        /// Receiver not ready, beyond the RNR retry count.
        RnrRetryExcErr = 13 => "RNR retry exceeded",
        /// RD domain violation (unused).
        LocRddViolErr = 14 => "Local RDD violation error",
        /// RD request invalid (unused).
        RemInvRdReqErr = 15 => "Remote invalid RD request",
        /// Remote abort.
        RemAbortErr = 16 => "Remote aborted error",
        /// Invalid EE context number (unused).
        InvEecnErr = 17 => "Invalid EE context number",
        /// Invalid EE context state (unused).
        InvEecStateErr = 18 => "Invalid EE context state",
        /// Fatal error.
        FatalErr = 19 => "Fatal error",
        /// Response timeout.
        RespTimeoutErr = 20 => "Response timeout error",
        /// General error.
        GeneralErr = 21 => "General error",
    }
}

enumeration! {
    /// `enum ibv_qp_state`.
    QpState: u8 {
        /// Just created, or reset.
        Reset = 0 => "RESET",
        /// Initialised: receives may be posted.
        Init = 1 => "INIT",
        /// Ready to receive.
        Rtr = 2 => "RTR",
        /// Ready to send.
        Rts = 3 => "RTS",
        /// Send queue drained.
        Sqd = 4 => "SQD",
        /// Send queue error (UD/UC).
        Sqe = 5 => "SQE",
        /// Error: every work request is flushed.
        Err = 6 => "ERR",
    }
}

enumeration! {
    /// `enum ibv_qp_type` (the ones this NIC knows).
    QpType: u8 {
        /// Reliable connected.
        Rc = 2 => "RC",
        /// Unreliable connected.
        Uc = 3 => "UC",
        /// Unreliable datagram.
        Ud = 4 => "UD",
    }
}

enumeration! {
    /// `enum ibv_mtu`.
    Mtu: u8 {
        /// 256 bytes.
        Mtu256 = 1 => "256",
        /// 512 bytes.
        Mtu512 = 2 => "512",
        /// 1024 bytes.
        Mtu1024 = 3 => "1024",
        /// 2048 bytes.
        Mtu2048 = 4 => "2048",
        /// 4096 bytes.
        Mtu4096 = 5 => "4096",
    }
}

impl Mtu {
    /// Payload bytes per packet.
    pub fn bytes(self) -> u32 {
        128 << (self as u32)
    }
}

enumeration! {
    /// `enum ibv_port_state`.
    PortState: u8 {
        /// No link.
        Down = 1 => "DOWN",
        /// Link up, not configured.
        Init = 2 => "INIT",
        /// Configured, not active.
        Armed = 3 => "ARMED",
        /// Up and running.
        Active = 4 => "ACTIVE",
    }
}

/// `enum ibv_qp_attr_mask`: which attributes a modify sets.
pub mod attr_mask {
    /// `qp_state`.
    pub const STATE: u32 = 1 << 0;
    /// `cur_qp_state`.
    pub const CUR_STATE: u32 = 1 << 1;
    /// `en_sqd_async_notify`.
    pub const EN_SQD_ASYNC_NOTIFY: u32 = 1 << 2;
    /// `qp_access_flags`.
    pub const ACCESS_FLAGS: u32 = 1 << 3;
    /// `pkey_index`.
    pub const PKEY_INDEX: u32 = 1 << 4;
    /// `port_num`.
    pub const PORT: u32 = 1 << 5;
    /// `qkey`.
    pub const QKEY: u32 = 1 << 6;
    /// `ah_attr` (the address vector: for RoCE, the destination GID).
    pub const AV: u32 = 1 << 7;
    /// `path_mtu`.
    pub const PATH_MTU: u32 = 1 << 8;
    /// `timeout`.
    pub const TIMEOUT: u32 = 1 << 9;
    /// `retry_cnt`.
    pub const RETRY_CNT: u32 = 1 << 10;
    /// `rnr_retry`.
    pub const RNR_RETRY: u32 = 1 << 11;
    /// `rq_psn`.
    pub const RQ_PSN: u32 = 1 << 12;
    /// `max_rd_atomic`.
    pub const MAX_QP_RD_ATOMIC: u32 = 1 << 13;
    /// `alt_ah_attr`.
    pub const ALT_PATH: u32 = 1 << 14;
    /// `min_rnr_timer`.
    pub const MIN_RNR_TIMER: u32 = 1 << 15;
    /// `sq_psn`.
    pub const SQ_PSN: u32 = 1 << 16;
    /// `max_dest_rd_atomic`.
    pub const MAX_DEST_RD_ATOMIC: u32 = 1 << 17;
    /// `path_mig_state`.
    pub const PATH_MIG_STATE: u32 = 1 << 18;
    /// `cap`.
    pub const CAP: u32 = 1 << 19;
    /// `dest_qp_num`.
    pub const DEST_QPN: u32 = 1 << 20;
    /// `rate_limit`.
    pub const RATE_LIMIT: u32 = 1 << 25;
}

/// The RNR NAK timer: `min_rnr_timer` encodings in microseconds (IBA table 45, as rxe's
/// `rnrnak_usec`; code 0 means 655.36 ms).
pub const RNR_TIMER_US: [u32; 32] = [
    655_360, 10, 20, 30, 40, 60, 80, 120, 160, 240, 320, 480, 640, 960, 1280, 1920, 2560, 3840,
    5120, 7680, 10_240, 15_360, 20_480, 30_720, 40_960, 61_410, 81_920, 122_880, 163_840, 245_760,
    327_680, 491_520,
];

/// The local ACK timeout for a QP's `timeout` attribute: 4.096 µs × 2^`timeout`, in
/// nanoseconds; `None` for 0 (no retransmission timer).
pub fn ack_timeout_ns(timeout: u8) -> Option<u64> {
    (timeout != 0).then(|| 4096u64 << timeout.min(31))
}

/// Retry counts of 7 never run out (`retry_cnt` and `rnr_retry`).
pub const RETRY_INFINITE: u8 = 7;
