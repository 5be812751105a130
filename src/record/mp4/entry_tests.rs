//! Tests for `entry.rs`: each codec's init segment, read back with the crate's decoder
//! (ISO/IEC 14496-12 box tree, the configuration box fields), and refused configs.

use shiguredo_mp4::boxes::{MoovBox, RootBox};
use shiguredo_mp4::{Decode, Mp4File};

use super::*;
use crate::codec::av1::tests::AV1_SEQUENCE_HEADER;
use crate::codec::h264::tests::{PPS_BASELINE, SPS_BASELINE};

/// Builds and decodes an init segment: its `ftyp` brands, its `moov` and its one entry.
fn init_of(config: &CodecConfig) -> (Vec<Brand>, MoovBox, SampleEntry) {
    let entry = sample_entry(config).expect("valid test config");
    let bytes = init_segment(&entry, timescale(config)).expect("encodes");
    let (file, used) = Mp4File::<RootBox>::decode(&bytes).expect("decodes");
    assert_eq!(used, bytes.len());
    let [RootBox::Moov(moov)] = file.boxes.as_slice() else {
        panic!("ftyp then moov only, got {:?}", file.boxes);
    };
    let stsd = &moov.trak_boxes[0].mdia_box.minf_box.stbl_box.stsd_box;
    assert_eq!(stsd.entries.len(), 1);
    assert_eq!(stsd.entries[0], entry, "the entry survives the round trip");
    (file.ftyp_box.compatible_brands, moov.clone(), entry)
}

/// The checks every init segment passes: one track, id 1, the timescale, `trex`.
fn common(moov: &MoovBox, timescale: u32, handler: [u8; 4]) {
    assert_eq!(moov.mvhd_box.timescale.get(), timescale);
    assert_eq!(moov.mvhd_box.next_track_id, 2);
    let [trak] = moov.trak_boxes.as_slice() else {
        panic!("one track");
    };
    assert_eq!(trak.tkhd_box.track_id, TRACK_ID);
    assert!(trak.tkhd_box.flag_track_enabled && trak.tkhd_box.flag_track_in_movie);
    assert_eq!(trak.mdia_box.mdhd_box.timescale.get(), timescale);
    assert_eq!(trak.mdia_box.hdlr_box.handler_type, handler);
    let mvex = moov.mvex_box.as_ref().expect("fragmented: mvex");
    assert!(mvex.mehd_box.is_none());
    assert_eq!(mvex.trex_boxes.len(), 1);
    assert_eq!(mvex.trex_boxes[0].track_id, TRACK_ID);
    assert_eq!(mvex.trex_boxes[0].default_sample_description_index, 1);
}

fn tkhd_size(moov: &MoovBox) -> (i16, i16) {
    let tkhd = &moov.trak_boxes[0].tkhd_box;
    (tkhd.width.integer, tkhd.height.integer)
}

#[test]
fn vp8_init_segment() {
    let (brands, moov, entry) = init_of(&CodecConfig::Vp8 {
        width: 640,
        height: 360,
    });
    common(&moov, 90_000, HdlrBox::HANDLER_TYPE_VIDE);
    assert!(brands.contains(&Brand::ISO5) && brands.contains(&Brand::ISO6));
    assert_eq!(tkhd_size(&moov), (640, 360));
    let SampleEntry::Vp08(vp08) = entry else {
        panic!("vp08 expected");
    };
    assert_eq!((vp08.visual.width, vp08.visual.height), (640, 360));
    let vpcc = vp08.vpcc_box;
    assert_eq!((vpcc.profile, vpcc.bit_depth.get()), (0, 8));
    assert_eq!(vpcc.chroma_subsampling.get(), 1);
    assert_eq!(vpcc.colour_primaries, 2);
    assert!(vpcc.codec_initialization_data.is_empty());
}

#[test]
fn vp9_init_segment() {
    let (_, moov, entry) = init_of(&CodecConfig::Vp9 {
        width: 1280,
        height: 720,
        profile: 2,
        bit_depth: 10,
    });
    common(&moov, 90_000, HdlrBox::HANDLER_TYPE_VIDE);
    let SampleEntry::Vp09(vp09) = entry else {
        panic!("vp09 expected");
    };
    assert_eq!((vp09.visual.width, vp09.visual.height), (1280, 720));
    assert_eq!(
        (vp09.vpcc_box.profile, vp09.vpcc_box.bit_depth.get()),
        (2, 10)
    );
    assert_eq!(vp09.vpcc_box.chroma_subsampling.get(), 1, "4:2:0");
}

#[test]
fn h264_init_segment() {
    let (brands, moov, entry) = init_of(&CodecConfig::H264 {
        width: 64,
        height: 48,
        sps: SPS_BASELINE.to_vec(),
        pps: PPS_BASELINE.to_vec(),
    });
    common(&moov, 90_000, HdlrBox::HANDLER_TYPE_VIDE);
    assert!(brands.contains(&Brand::AVC1));
    let SampleEntry::Avc1(avc1) = entry else {
        panic!("avc1 expected");
    };
    let avcc = avc1.avcc_box;
    assert_eq!(avcc.avc_profile_indication, 66);
    assert_eq!(avcc.profile_compatibility, 0xc0);
    assert_eq!(avcc.avc_level_indication, 10);
    assert_eq!(avcc.length_size_minus_one.get(), 3);
    assert_eq!(avcc.sps_list, [SPS_BASELINE.to_vec()]);
    assert_eq!(avcc.pps_list, [PPS_BASELINE.to_vec()]);
    assert_eq!(avcc.chroma_format, None, "baseline has no extension fields");
}

#[test]
fn h264_high_profile_has_the_extension_fields() {
    // x264 High 1080p (as in `codec/resolution_tests.rs`): sps id 0, chroma 1, depths 0.
    let sps = vec![
        0x67, 0x64, 0x00, 0x28, 0xac, 0xd9, 0x40, 0x78, 0x02, 0x27, 0xe5, 0x84, 0x00, 0x00, 0x03,
        0x00, 0x04, 0x00, 0x00, 0x03, 0x00, 0xf0, 0x3c, 0x60, 0xc6, 0x58,
    ];
    let entry = sample_entry(&CodecConfig::H264 {
        width: 1920,
        height: 1080,
        sps,
        pps: PPS_BASELINE.to_vec(),
    })
    .unwrap();
    let SampleEntry::Avc1(avc1) = entry else {
        panic!("avc1 expected");
    };
    assert_eq!(avc1.avcc_box.avc_profile_indication, 100);
    assert_eq!(avc1.avcc_box.chroma_format.map(|c| c.get()), Some(1));
    assert_eq!(
        avc1.avcc_box.bit_depth_luma_minus8.map(|d| d.get()),
        Some(0)
    );
}

#[test]
fn av1_init_segment() {
    let (brands, moov, entry) = init_of(&CodecConfig::Av1 {
        width: 64,
        height: 48,
        sequence_header: AV1_SEQUENCE_HEADER.to_vec(),
    });
    common(&moov, 90_000, HdlrBox::HANDLER_TYPE_VIDE);
    assert!(brands.contains(&Brand::AV01));
    let SampleEntry::Av01(av01) = entry else {
        panic!("av01 expected");
    };
    let av1c = av01.av1c_box;
    assert_eq!(av1c.seq_profile.get(), 0);
    assert_eq!(av1c.seq_level_idx_0.get(), 0);
    assert_eq!(
        (
            av1c.chroma_subsampling_x.get(),
            av1c.chroma_subsampling_y.get()
        ),
        (1, 1)
    );
    assert_eq!(av1c.config_obus, AV1_SEQUENCE_HEADER);
}

#[test]
fn opus_init_segment() {
    for channels in [1, 2] {
        let (_, moov, entry) = init_of(&CodecConfig::Opus { channels });
        common(&moov, 48_000, HdlrBox::HANDLER_TYPE_SOUN);
        assert_eq!(tkhd_size(&moov), (0, 0));
        let SampleEntry::Opus(opus) = entry else {
            panic!("Opus expected");
        };
        assert_eq!(opus.audio.channelcount, u16::from(channels));
        assert_eq!(opus.audio.samplerate.integer, 48_000);
        assert_eq!(opus.dops_box.output_channel_count, channels);
        assert_eq!(opus.dops_box.pre_skip, 0);
        assert_eq!(opus.dops_box.input_sample_rate, 48_000);
        assert_eq!(opus.dops_box.output_gain, 0);
    }
}

#[test]
fn invalid_configs_are_refused() {
    let refused = |config: CodecConfig| {
        let error = sample_entry(&config).expect_err("refused");
        assert_eq!(error.as_str(), "invalid_config", "{config:?}");
    };
    refused(CodecConfig::Vp8 {
        width: 0,
        height: 48,
    });
    refused(CodecConfig::Vp8 {
        width: 40_000,
        height: 48,
    });
    refused(CodecConfig::Vp9 {
        width: 64,
        height: 48,
        profile: 4,
        bit_depth: 8,
    });
    refused(CodecConfig::Vp9 {
        width: 64,
        height: 48,
        profile: 0,
        bit_depth: 9,
    });
    refused(CodecConfig::H264 {
        width: 64,
        height: 48,
        sps: vec![0x67],
        pps: PPS_BASELINE.to_vec(),
    });
    refused(CodecConfig::H264 {
        width: 64,
        height: 48,
        sps: SPS_BASELINE.to_vec(),
        pps: vec![],
    });
    // An SPS cut before its frame size (`codec::h264::parse_sps` needs the cropping fields).
    refused(CodecConfig::H264 {
        width: 1920,
        height: 1080,
        sps: vec![0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40],
        pps: PPS_BASELINE.to_vec(),
    });
    let mut long_sps = SPS_BASELINE.to_vec();
    long_sps.resize(70_000, 0xff);
    refused(CodecConfig::H264 {
        width: 64,
        height: 48,
        sps: long_sps,
        pps: PPS_BASELINE.to_vec(),
    });
    refused(CodecConfig::Av1 {
        width: 64,
        height: 48,
        sequence_header: vec![0x12, 0x00],
    });
    refused(CodecConfig::Opus { channels: 0 });
    refused(CodecConfig::Opus { channels: 3 });
}
