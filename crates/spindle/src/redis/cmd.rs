/// One argument of a command, as the bytes Redis will see.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Arg(pub Vec<u8>);

impl From<&str> for Arg {
    fn from(s: &str) -> Self {
        Arg(s.as_bytes().to_vec())
    }
}
impl From<String> for Arg {
    fn from(s: String) -> Self {
        Arg(s.into_bytes())
    }
}
impl From<&String> for Arg {
    fn from(s: &String) -> Self {
        Arg(s.as_bytes().to_vec())
    }
}
impl From<&[u8]> for Arg {
    fn from(s: &[u8]) -> Self {
        Arg(s.to_vec())
    }
}
impl From<Vec<u8>> for Arg {
    fn from(s: Vec<u8>) -> Self {
        Arg(s)
    }
}
macro_rules! int_arg {
    ($($t:ty),*) => {$(
        impl From<$t> for Arg {
            fn from(n: $t) -> Self {
                Arg(n.to_string().into_bytes())
            }
        }
    )*};
}
int_arg!(i32, i64, u32, u64, usize);

/// A Redis command as a value: the name, then the arguments.
///
/// ```
/// use spindle::redis::Cmd;
/// let cmd = Cmd::new("SET").arg("k").arg("v").arg("PX").arg(1000u64);
/// assert_eq!(cmd.name(), "SET");
/// assert_eq!(cmd.args().len(), 4);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cmd {
    name: String,
    args: Vec<Arg>,
    /// How long the command may wait in Redis by design (`XREAD BLOCK`):
    /// a transport's deadline for it is its usual bound plus this.
    block_ms: u64,
}

impl Cmd {
    pub fn new(name: &str) -> Self {
        Cmd { name: name.to_owned(), args: Vec::new(), block_ms: 0 }
    }

    /// Appends `BLOCK <ms>` and records that Redis may hold the reply that long.
    pub fn block(mut self, ms: u64) -> Self {
        self.block_ms = ms;
        self.arg("BLOCK").arg(ms)
    }

    pub fn block_ms(&self) -> u64 {
        self.block_ms
    }

    pub fn arg(mut self, a: impl Into<Arg>) -> Self {
        self.args.push(a.into());
        self
    }

    pub fn args_from<I, A>(mut self, items: I) -> Self
    where
        I: IntoIterator<Item = A>,
        A: Into<Arg>,
    {
        self.args.extend(items.into_iter().map(Into::into));
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn args(&self) -> &[Arg] {
        &self.args
    }
}
