//! Handles as index plus generation in a table (used by both APIs): a stale, double-freed or forged handle is
//! looked up and found wanting, never dereferenced.

#![forbid(unsafe_code)]

use std::sync::Arc;

/// Bits of a handle: low 32 = slot index + 1 (so 0 is never valid), high 32 = generation.
pub type RawHandle = u64;

struct Slot<T> {
    generation: u32,
    value: Option<Arc<T>>,
}

/// A table of live objects addressed by [`RawHandle`]s.
pub struct HandleTable<T> {
    slots: Vec<Slot<T>>,
    free: Vec<u32>,
}

impl<T> Default for HandleTable<T> {
    fn default() -> Self {
        HandleTable {
            slots: Vec::new(),
            free: Vec::new(),
        }
    }
}

impl<T> HandleTable<T> {
    /// Stores `value` and returns its new handle.
    pub fn insert(&mut self, value: Arc<T>) -> RawHandle {
        let index = match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push(Slot {
                    generation: 1,
                    value: None,
                });
                (self.slots.len() - 1) as u32
            }
        };
        let slot = &mut self.slots[index as usize];
        slot.value = Some(value);
        (u64::from(slot.generation) << 32) | u64::from(index + 1)
    }

    fn locate(&self, handle: RawHandle) -> Option<usize> {
        let index = (handle & 0xffff_ffff).checked_sub(1)? as usize;
        let generation = (handle >> 32) as u32;
        let slot = self.slots.get(index)?;
        (slot.generation == generation && slot.value.is_some()).then_some(index)
    }

    /// The object behind a live handle.
    pub fn get(&self, handle: RawHandle) -> Option<Arc<T>> {
        self.locate(handle)
            .and_then(|i| self.slots[i].value.clone())
    }

    /// Removes a live handle; the slot's generation moves on so the handle stays dead.
    pub fn remove(&mut self, handle: RawHandle) -> Option<Arc<T>> {
        let index = self.locate(handle)?;
        let slot = &mut self.slots[index];
        let value = slot.value.take();
        slot.generation = slot.generation.wrapping_add(1);
        if slot.generation != 0 {
            self.free.push(index as u32); // a slot whose generation wrapped is retired
        }
        value
    }

    /// Every live object.
    pub fn values(&self) -> impl Iterator<Item = &Arc<T>> {
        self.slots.iter().filter_map(|s| s.value.as_ref())
    }

    /// Every live object with its handle.
    pub fn entries(&self) -> impl Iterator<Item = (RawHandle, &Arc<T>)> {
        self.slots.iter().enumerate().filter_map(|(i, s)| {
            let value = s.value.as_ref()?;
            Some(((u64::from(s.generation) << 32) | (i as u64 + 1), value))
        })
    }

    /// Number of live objects.
    pub fn len(&self) -> usize {
        self.slots.iter().filter(|s| s.value.is_some()).count()
    }

    /// Whether no object is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_and_forged_handles_are_refused() {
        let mut table = HandleTable::default();
        let a = table.insert(Arc::new("a"));
        assert_eq!(*table.get(a).unwrap(), "a");
        assert!(table.remove(a).is_some());
        assert!(table.get(a).is_none(), "stale");
        assert!(table.remove(a).is_none(), "double free");
        let b = table.insert(Arc::new("b"));
        assert_ne!(a, b, "the slot is reused with a new generation");
        assert!(table.get(a).is_none());
        for forged in [0, 1, u64::MAX, b + 1, b ^ (1 << 40), 0xdead_beef] {
            assert!(table.get(forged).is_none(), "{forged:#x}");
        }
        assert_eq!(table.len(), 1);
    }
}
