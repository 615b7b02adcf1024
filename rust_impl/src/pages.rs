//! Memory for a table that is read at random rows, on huge pages where the OS gives them.
//!
//! A batch is 100 random rows of the training set (15 MB for MNIST packed, `PackedRows`). On
//! 4 KiB pages that is ~3,600 pages, more than the TLB holds, so most rows of a batch cost a
//! page walk on top of their cache misses; on 2 MiB pages the whole set takes 8 entries. Linux
//! backs anonymous memory with transparent huge pages when the memory asks for them (`madvise`,
//! the setting of many distributions) or always; elsewhere this is ordinary memory and only the
//! advice is lost.

use std::ops::{Deref, DerefMut};

use memmap2::{MmapMut, MmapOptions};

/// `len` zero bytes in their own mapping, advised onto huge pages.
pub struct HugePageBytes(MmapMut);

impl HugePageBytes {
    /// # Panics
    /// When the OS has no memory to map, as a `Vec` of that size would abort.
    pub fn zeroed(len: usize) -> Self {
        let map = MmapOptions::new()
            .len(len)
            .map_anon()
            .unwrap_or_else(|e| panic!("could not map {len} bytes for the training set: {e}"));
        // Only advice: where the kernel has no transparent huge pages this fails and the
        // memory works as it is, on small pages.
        #[cfg(target_os = "linux")]
        let _ = map.advise(memmap2::Advice::HugePage);
        HugePageBytes(map)
    }
}

impl Deref for HugePageBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl DerefMut for HugePageBytes {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bytes_start_zero_and_keep_what_is_written() {
        for len in [1, 4097, 3 << 20] {
            let mut bytes = HugePageBytes::zeroed(len);
            assert_eq!(bytes.len(), len);
            assert!(bytes.iter().all(|&b| b == 0));
            for (i, b) in bytes.iter_mut().enumerate() {
                *b = i as u8;
            }
            assert!(bytes.iter().enumerate().all(|(i, &b)| b == i as u8));
        }
    }

    /// Kilobytes of the mapping holding `address` that are on huge pages, from the kernel's
    /// account of this process's memory; None when that can't be read.
    #[cfg(target_os = "linux")]
    fn huge_kb_at(address: usize) -> Option<usize> {
        let smaps = std::fs::read_to_string("/proc/self/smaps").ok()?;
        let mut inside = false;
        for line in smaps.lines() {
            let first = line.split_whitespace().next().unwrap_or("");
            if let Some((start, end)) = first.split_once('-') {
                if let (Ok(start), Ok(end)) = (
                    usize::from_str_radix(start, 16),
                    usize::from_str_radix(end, 16),
                ) {
                    inside = (start..end).contains(&address);
                    continue;
                }
            }
            if let Some(kb) = line.strip_prefix("AnonHugePages:").filter(|_| inside) {
                return kb.trim().trim_end_matches("kB").trim().parse().ok();
            }
        }
        None
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn the_bytes_are_on_huge_pages_where_the_kernel_allows_them() {
        let setting = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled")
            .unwrap_or_default();
        if !setting.contains("[always]") && !setting.contains("[madvise]") {
            eprintln!(
                "skipped: transparent huge pages are off here ({})",
                setting.trim()
            );
            return;
        }
        let mut bytes = HugePageBytes::zeroed(16 << 20);
        bytes.fill(1);
        let huge = huge_kb_at(bytes.as_ptr() as usize + (8 << 20)).expect("/proc/self/smaps");
        assert!(huge >= 2048, "{huge} kB of 16 MiB on huge pages");
    }
}
