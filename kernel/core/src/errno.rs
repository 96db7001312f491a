//! Linux error numbers, the only failure currency of the uAPI.

use std::fmt;

/// A Linux `errno` value (always positive; the uAPI returns it negated or through
/// `Err`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Errno(i32);

macro_rules! errnos {
    ($($name:ident = $value:literal, $text:literal;)*) => {
        impl Errno {
            $(
                #[doc = $text]
                pub const $name: Errno = Errno($value);
            )*

            /// The symbolic name ("EINVAL"), or `None` for a value this table lacks.
            pub const fn name(self) -> Option<&'static str> {
                match self.0 {
                    $($value => Some(stringify!($name)),)*
                    _ => None,
                }
            }

            /// The `strerror` text.
            pub const fn description(self) -> &'static str {
                match self.0 {
                    $($value => $text,)*
                    _ => "Unknown error",
                }
            }
        }
    };
}

errnos! {
    EPERM = 1, "Operation not permitted";
    ENOENT = 2, "No such file or directory";
    ESRCH = 3, "No such process";
    EINTR = 4, "Interrupted system call";
    EIO = 5, "Input/output error";
    ENXIO = 6, "No such device or address";
    E2BIG = 7, "Argument list too long";
    EBADF = 9, "Bad file descriptor";
    EAGAIN = 11, "Resource temporarily unavailable";
    ENOMEM = 12, "Cannot allocate memory";
    EACCES = 13, "Permission denied";
    EFAULT = 14, "Bad address";
    EBUSY = 16, "Device or resource busy";
    EEXIST = 17, "File exists";
    EXDEV = 18, "Invalid cross-device link";
    ENODEV = 19, "No such device";
    ENOTDIR = 20, "Not a directory";
    EISDIR = 21, "Is a directory";
    EINVAL = 22, "Invalid argument";
    ENFILE = 23, "Too many open files in system";
    EMFILE = 24, "Too many open files";
    ENOTTY = 25, "Inappropriate ioctl for device";
    EFBIG = 27, "File too large";
    ENOSPC = 28, "No space left on device";
    ESPIPE = 29, "Illegal seek";
    EROFS = 30, "Read-only file system";
    EPIPE = 32, "Broken pipe";
    ERANGE = 34, "Numerical result out of range";
    EDEADLK = 35, "Resource deadlock avoided";
    ENAMETOOLONG = 36, "File name too long";
    ENOSYS = 38, "Function not implemented";
    ENODATA = 61, "No data available";
    ETIME = 62, "Timer expired";
    EPROTO = 71, "Protocol error";
    EOVERFLOW = 75, "Value too large for defined data type";
    EBADFD = 77, "File descriptor in bad state";
    EMSGSIZE = 90, "Message too long";
    EPROTONOSUPPORT = 93, "Protocol not supported";
    EOPNOTSUPP = 95, "Operation not supported";
    EADDRINUSE = 98, "Address already in use";
    ENETDOWN = 100, "Network is down";
    ECONNRESET = 104, "Connection reset by peer";
    ENOBUFS = 105, "No buffer space available";
    ETIMEDOUT = 110, "Connection timed out";
    ECONNREFUSED = 111, "Connection refused";
    EALREADY = 114, "Operation already in progress";
    EINPROGRESS = 115, "Operation now in progress";
    ECANCELED = 125, "Operation canceled";
    EOWNERDEAD = 130, "Owner died";
    ERESTARTSYS = 512, "Interrupted system call (kernel-internal, restarted or EINTR)";
}

impl Errno {
    /// The largest errno value the kernel encodes in a pointer or return value.
    pub const MAX_ERRNO: i32 = 4095;

    /// Builds an `Errno` from a positive value.
    ///
    /// Returns `None` unless `1 <= value <= MAX_ERRNO`.
    pub const fn new(value: i32) -> Option<Self> {
        if value >= 1 && value <= Self::MAX_ERRNO {
            Some(Self(value))
        } else {
            None
        }
    }

    /// The positive value.
    pub const fn raw(self) -> i32 {
        self.0
    }

    /// The negative value the kernel returns from a syscall or stores as a fence error.
    pub const fn negated(self) -> i32 {
        -self.0
    }

    /// The value a user process sees: kernel-internal restart codes become `EINTR`.
    pub const fn to_user(self) -> Self {
        if self.0 == Self::ERESTARTSYS.0 {
            Self::EINTR
        } else {
            self
        }
    }
}

impl fmt::Debug for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "Errno({})", self.0),
        }
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{name} ({})", self.description()),
            None => write!(f, "errno {}", self.0),
        }
    }
}

impl std::error::Error for Errno {}

/// The result type of every kernel entry point.
pub type KResult<T> = Result<T, Errno>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_match_linux_asm_generic() {
        assert_eq!(Errno::EPERM.raw(), 1);
        assert_eq!(Errno::EBADF.raw(), 9);
        assert_eq!(Errno::EINVAL.raw(), 22);
        assert_eq!(Errno::ENOTTY.raw(), 25);
        assert_eq!(Errno::ETIME.raw(), 62);
        assert_eq!(Errno::EOPNOTSUPP.raw(), 95);
        assert_eq!(Errno::ETIMEDOUT.raw(), 110);
    }

    #[test]
    fn display_names_the_error() {
        assert_eq!(Errno::EINVAL.to_string(), "EINVAL (Invalid argument)");
        assert_eq!(format!("{:?}", Errno::EBUSY), "EBUSY");
        assert_eq!(
            Errno::new(4000).map(|e| e.to_string()),
            Some("errno 4000".to_owned())
        );
    }

    #[test]
    fn restart_becomes_eintr_for_users() {
        assert_eq!(Errno::ERESTARTSYS.to_user(), Errno::EINTR);
        assert_eq!(Errno::EIO.to_user(), Errno::EIO);
    }

    #[test]
    fn out_of_range_values_are_not_errnos() {
        assert_eq!(Errno::new(0), None);
        assert_eq!(Errno::new(-5), None);
        assert_eq!(Errno::new(4096), None);
    }
}
