//! Reading back the fragmented MP4 files the server's recorder writes (`ftyp`, `moov`,
//! then `moof` + `mdat` pairs), with `shiguredo_mp4`'s box decoders: what a test checks a
//! recording against (sample count, durations, sync flags, decode times, sample bytes).
//!
//! The reader asserts the layout the recorder promises; a file that breaks it panics with
//! the broken rule (it is for tests).

use std::num::NonZeroU32;

use shiguredo_mp4::boxes::{RootBox, SampleEntry};
use shiguredo_mp4::{BoxHeader, Decode, Mp4File};

/// One sample as read back: duration, sync flag, bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadSample {
    /// Its duration, in the track's timescale.
    pub duration: u32,
    /// A sync sample (a key frame; every audio sample).
    pub sync: bool,
    /// Its bytes.
    pub data: Vec<u8>,
}

/// One fragment as read back.
#[derive(Clone, Debug)]
pub struct ReadFragment {
    /// `mfhd` sequence number.
    pub sequence: u32,
    /// `tfdt` base media decode time, in the timescale.
    pub base_decode_time: u64,
    /// Its samples, in order.
    pub samples: Vec<ReadSample>,
}

/// A whole file as read back with the crate's decoder.
#[derive(Clone, Debug)]
pub struct ReadFile {
    /// Ticks per second (`mdhd`).
    pub timescale: NonZeroU32,
    /// The sample entry (`stsd`).
    pub entry: SampleEntry,
    /// The fragments, in order.
    pub fragments: Vec<ReadFragment>,
}

impl ReadFile {
    /// Every sample of every fragment, in order.
    pub fn samples(&self) -> impl Iterator<Item = &ReadSample> {
        self.fragments.iter().flat_map(|f| f.samples.iter())
    }
}

/// Reads a file written by the recorder: `ftyp`, `moov`, then `moof` + `mdat` pairs.
/// Sample bytes are found through `trun.data_offset` from the start of each `moof`.
///
/// # Panics
/// When the file breaks that layout (a box that does not decode, a missing `tfdt`, a
/// sample outside its `mdat`, anything after the last `mdat`).
pub fn read_file(bytes: &[u8]) -> ReadFile {
    // The top-level boxes with their byte positions.
    let mut boxes = Vec::new();
    let mut position = 0;
    while position < bytes.len() {
        let (header, _) = BoxHeader::decode(&bytes[position..]).expect("a box header");
        let size = header.box_size.get() as usize;
        assert!(
            size >= 8 && position + size <= bytes.len(),
            "box size in bounds"
        );
        let (decoded, used) =
            RootBox::decode(&bytes[position..position + size]).expect("the box decodes");
        assert_eq!(used, size);
        boxes.push((position, decoded));
        position += size;
    }
    let (_, used) = Mp4File::<RootBox>::decode(bytes).expect("the file decodes");
    assert_eq!(used, bytes.len());
    let (ftyp, _) = shiguredo_mp4::boxes::FtypBox::decode(bytes).expect("ftyp first");
    assert_eq!(ftyp.major_brand, shiguredo_mp4::boxes::Brand::ISO5);
    let mut boxes = boxes.into_iter().skip(1); // the ftyp
    let Some((_, RootBox::Moov(moov))) = boxes.next() else {
        panic!("moov after ftyp");
    };
    let trak = &moov.trak_boxes[0];
    let mut read = ReadFile {
        timescale: trak.mdia_box.mdhd_box.timescale,
        entry: trak.mdia_box.minf_box.stbl_box.stsd_box.entries[0].clone(),
        fragments: Vec::new(),
    };
    while let Some((moof_start, RootBox::Moof(moof))) = boxes.next() {
        let Some((mdat_start, RootBox::Mdat(mdat))) = boxes.next() else {
            panic!("mdat after moof");
        };
        let mdat_payload_start = mdat_start + 8;
        let [traf] = moof.traf_boxes.as_slice() else {
            panic!("one traf");
        };
        assert_eq!(traf.tfhd_box.track_id, 1);
        assert!(traf.tfhd_box.default_base_is_moof);
        let [trun] = traf.trun_boxes.as_slice() else {
            panic!("one trun");
        };
        let mut offset = moof_start + trun.data_offset.expect("data offset") as usize;
        assert_eq!(offset, mdat_payload_start, "samples start the mdat payload");
        let mut samples = Vec::new();
        for s in &trun.samples {
            let size = s.size.expect("per-sample size") as usize;
            let flags = s.flags.expect("per-sample flags");
            let sync = !flags.sample_is_non_sync_sample();
            assert_eq!(flags.sample_depends_on(), if sync { 2 } else { 1 });
            let start = offset - mdat_payload_start;
            samples.push(ReadSample {
                duration: s.duration.expect("per-sample duration"),
                sync,
                data: mdat.payload[start..start + size].to_vec(),
            });
            offset += size;
        }
        assert_eq!(
            offset,
            mdat_payload_start + mdat.payload.len(),
            "samples fill the mdat"
        );
        read.fragments.push(ReadFragment {
            sequence: moof.mfhd_box.sequence_number,
            base_decode_time: traf.tfdt_box.as_ref().expect("tfdt").base_media_decode_time,
            samples,
        });
    }
    assert!(boxes.next().is_none(), "nothing after the last mdat");
    read
}
