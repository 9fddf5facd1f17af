//! TODO
/// TODO
#[derive(Clone, Debug, Default)]
pub struct NotificationLayer;
impl NotificationLayer {
    /// TODO
    pub fn lookup(self) -> Self { self }
}
