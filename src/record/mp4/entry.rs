//! The init segment (`ftyp` + `moov`, ISO/IEC 14496-12 §4.3, §8.2.1) of a one-track
//! fragmented MP4 file, and its sample entry built from a [`CodecConfig`]:
//!
//! | codec | sample entry | configuration box | binding |
//! |-------|--------------|-------------------|---------|
//! | VP8   | `vp08` | `vpcC` v1 | VP Codec ISO Media File Format Binding §2.2–2.3 |
//! | VP9   | `vp09` | `vpcC` v1 | same |
//! | H.264 | `avc1` | `avcC`    | ISO/IEC 14496-15 §5.3.3, §5.4.2 |
//! | AV1   | `av01` | `av1C`    | AV1-ISOBMFF §2.2, §2.3 |
//! | Opus  | `Opus` | `dOps`    | Encapsulation of Opus in ISOBMFF §4.3.1, §4.3.2 |

use std::num::NonZeroU32;

use shiguredo_mp4::boxes::{
    AudioSampleEntryFields, Av01Box, Av1cBox, Avc1Box, AvccBox, Brand, DinfBox, DopsBox, FtypBox,
    HdlrBox, MdhdBox, MdiaBox, MinfBox, MoovBox, MvexBox, MvhdBox, OpusBox, SampleEntry, SmhdBox,
    StblBox, StcoBox, StscBox, StsdBox, StszBox, SttsBox, TkhdBox, TrakBox, TrexBox,
    VisualSampleEntryFields, VmhdBox, Vp08Box, Vp09Box, VpccBox,
};
use shiguredo_mp4::{Either, Encode, FixedPointNumber, Mp4FileTime, SampleFlags, Uint};

use super::Mp4Error;
use crate::codec::{av1, h264};
use crate::record::CodecConfig;

/// The only track of every file: `track_ID` 1 (ISO/IEC 14496-12 §8.3.2).
pub(super) const TRACK_ID: u32 = 1;

/// Largest width or height accepted: `tkhd` stores them as signed 16.16 numbers.
const MAX_DIMENSION: u16 = i16::MAX as u16;

/// "Unspecified" colour primaries, transfer and matrix (ISO/IEC 23091-2 §8.1–8.3).
const COLOUR_UNSPECIFIED: u8 = 2;

/// The media clock of a codec, in ticks per second: the RTP clock rate, 90 kHz for video
/// (RFC 7741 §4.1, RFC 6184 §5.1, AV1 RTP §7.1) and 48 kHz for Opus (RFC 7587 §4.1).
pub(super) fn timescale(config: &CodecConfig) -> u32 {
    match config {
        CodecConfig::Opus { .. } => 48_000,
        _ => 90_000,
    }
}

/// Builds the sample entry of a config.
///
/// # Errors
///
/// [`Mp4Error::InvalidConfig`]: a zero or over-32767 dimension, an SPS that
/// [`h264::parse_sps`] refuses, a sequence header OBU that [`av1::parse_sequence_header_obu`]
/// refuses or that ends before its colour format (or has a reserved profile), a parameter
/// set over 65535 bytes, an Opus channel count other than 1 or 2 (channel mapping family 0,
/// RFC 7845 §5.1.1.1).
pub(super) fn sample_entry(config: &CodecConfig) -> Result<SampleEntry, Mp4Error> {
    let invalid = Mp4Error::InvalidConfig;
    Ok(match config {
        CodecConfig::Vp8 { width, height } => SampleEntry::Vp08(Vp08Box {
            visual: visual(*width, *height)?,
            vpcc_box: vpcc(0, 8, 1),
            unknown_boxes: Vec::new(),
        }),
        CodecConfig::Vp9 {
            width,
            height,
            profile,
            bit_depth,
        } => {
            if *profile > 3 || ![8, 10, 12].contains(bit_depth) {
                return Err(invalid("vp9 profile or bit depth"));
            }
            // Profiles 0 and 2 are 4:2:0 (coded as 1, colocated with luma, as WebCodecs'
            // `vp09` default); 1 and 3 carry 4:2:2/4:4:0/4:4:4 in the frame header, which
            // CodecConfig does not keep: 3 (4:4:4) is written, advisory only.
            let subsampling = if profile % 2 == 0 { 1 } else { 3 };
            SampleEntry::Vp09(Vp09Box {
                visual: visual(*width, *height)?,
                vpcc_box: vpcc(*profile, *bit_depth, subsampling),
                unknown_boxes: Vec::new(),
            })
        }
        CodecConfig::H264 {
            width,
            height,
            sps,
            pps,
        } => {
            let fields = h264::parse_sps(sps).ok_or(invalid("h264 sps"))?;
            if sps.len() > usize::from(u16::MAX) || pps.len() > usize::from(u16::MAX) {
                return Err(invalid("h264 parameter set length"));
            }
            if pps.first().is_none_or(|header| header & 0x1f != 8) {
                return Err(invalid("h264 pps"));
            }
            let high = !matches!(fields.profile_idc, 66 | 77 | 88);
            SampleEntry::Avc1(Avc1Box {
                visual: visual(*width, *height)?,
                avcc_box: AvccBox {
                    avc_profile_indication: fields.profile_idc,
                    profile_compatibility: fields.constraint_flags,
                    avc_level_indication: fields.level_idc,
                    length_size_minus_one: Uint::new(3), // 4-byte lengths (Frame::data)
                    sps_list: vec![sps.clone()],
                    pps_list: vec![pps.clone()],
                    chroma_format: high.then_some(Uint::new(fields.chroma_format_idc)),
                    bit_depth_luma_minus8: high.then_some(Uint::new(fields.bit_depth_luma_minus8)),
                    bit_depth_chroma_minus8: high
                        .then_some(Uint::new(fields.bit_depth_chroma_minus8)),
                    sps_ext_list: Vec::new(),
                },
                unknown_boxes: Vec::new(),
            })
        }
        CodecConfig::Av1 {
            width,
            height,
            sequence_header,
        } => {
            let invalid_header = || invalid("av1 sequence header");
            let f = av1::parse_sequence_header_obu(sequence_header).ok_or_else(invalid_header)?;
            // No colour format: cut short, or a reserved profile.
            let c = f.color.ok_or_else(invalid_header)?;
            SampleEntry::Av01(Av01Box {
                visual: visual(*width, *height)?,
                av1c_box: Av1cBox {
                    seq_profile: Uint::new(f.seq_profile),
                    seq_level_idx_0: Uint::new(f.seq_level_idx_0),
                    seq_tier_0: Uint::new(u8::from(f.seq_tier_0)),
                    high_bitdepth: Uint::new(u8::from(c.high_bitdepth)),
                    twelve_bit: Uint::new(u8::from(c.twelve_bit)),
                    monochrome: Uint::new(u8::from(c.mono_chrome)),
                    chroma_subsampling_x: Uint::new(u8::from(c.subsampling_x)),
                    chroma_subsampling_y: Uint::new(u8::from(c.subsampling_y)),
                    chroma_sample_position: Uint::new(c.chroma_sample_position),
                    initial_presentation_delay_minus_one: None,
                    // configOBUs: the sequence header OBU, with its size field (§2.3.4).
                    config_obus: sequence_header.clone(),
                },
                unknown_boxes: Vec::new(),
            })
        }
        CodecConfig::Opus { channels } => {
            if !matches!(channels, 1 | 2) {
                return Err(invalid("opus channel count"));
            }
            SampleEntry::Opus(OpusBox {
                audio: AudioSampleEntryFields {
                    data_reference_index: AudioSampleEntryFields::DEFAULT_DATA_REFERENCE_INDEX,
                    channelcount: u16::from(*channels),
                    samplesize: AudioSampleEntryFields::DEFAULT_SAMPLESIZE,
                    samplerate: FixedPointNumber::new(48_000u16, 0),
                },
                dops_box: DopsBox {
                    output_channel_count: *channels,
                    // 0, not libopus' 312: a recording joins the RTP stream mid-way, after
                    // the encoder's priming samples, and the file has no edit list that a
                    // pre-skip would need to keep audio aligned with the video file
                    // (Opus in ISOBMFF §4.3.2, §4.4; see the module docs).
                    pre_skip: 0,
                    input_sample_rate: 48_000,
                    output_gain: 0,
                },
                unknown_boxes: Vec::new(),
            })
        }
    })
}

/// The `VisualSampleEntry` fields (ISO/IEC 14496-12 §12.1.3): 72 dpi, one frame per
/// sample, 24-bit depth, no compressor name.
fn visual(width: u16, height: u16) -> Result<VisualSampleEntryFields, Mp4Error> {
    if width == 0 || height == 0 || width > MAX_DIMENSION || height > MAX_DIMENSION {
        return Err(Mp4Error::InvalidConfig("video dimensions"));
    }
    Ok(VisualSampleEntryFields {
        data_reference_index: VisualSampleEntryFields::DEFAULT_DATA_REFERENCE_INDEX,
        width,
        height,
        horizresolution: VisualSampleEntryFields::DEFAULT_HORIZRESOLUTION,
        vertresolution: VisualSampleEntryFields::DEFAULT_VERTRESOLUTION,
        frame_count: VisualSampleEntryFields::DEFAULT_FRAME_COUNT,
        compressorname: VisualSampleEntryFields::NULL_COMPRESSORNAME,
        depth: VisualSampleEntryFields::DEFAULT_DEPTH,
    })
}

/// A `vpcC` box (VP codec binding §2.3): level 0 (not signalled by RTP, "unknown"),
/// limited range, unspecified colour; no codec initialization data (none for VP8/VP9).
fn vpcc(profile: u8, bit_depth: u8, chroma_subsampling: u8) -> VpccBox {
    VpccBox {
        profile,
        level: 0,
        bit_depth: Uint::new(bit_depth),
        chroma_subsampling: Uint::new(chroma_subsampling),
        video_full_range_flag: Uint::new(0),
        colour_primaries: COLOUR_UNSPECIFIED,
        transfer_characteristics: COLOUR_UNSPECIFIED,
        matrix_coefficients: COLOUR_UNSPECIFIED,
        codec_initialization_data: Vec::new(),
    }
}

/// The init segment: `ftyp` then `moov` with one `trak` (empty sample tables, the sample
/// entry in `stsd`) and `mvex`/`trex` (ISO/IEC 14496-12 §8.8.1, §8.8.3). Durations are 0
/// (unknown when the file starts, ISO/IEC 14496-12 §8.2.2.3) and no `mehd` is written; times
/// are the 1904 epoch, since nothing here reads a clock (the manifest has the wall time).
///
/// # Errors
///
/// [`Mp4Error::Encode`] if the crate refuses a box (not expected for a built entry).
pub(super) fn init_segment(entry: &SampleEntry, timescale: u32) -> Result<Vec<u8>, Mp4Error> {
    let timescale = NonZeroU32::new(timescale).ok_or(Mp4Error::InvalidConfig("timescale"))?;
    let epoch = Mp4FileTime::from_secs(0);
    let resolution = entry.video_resolution();
    let mut compatible_brands = vec![Brand::ISO5, Brand::ISO6, Brand::MP41];
    match entry {
        SampleEntry::Avc1(_) => compatible_brands.push(Brand::AVC1),
        SampleEntry::Av01(_) => compatible_brands.push(Brand::AV01),
        _ => {}
    }
    // `iso5` is the first brand with `default-base-is-moof` (ISO/IEC 14496-12 §8.8.7.1).
    let ftyp = FtypBox {
        major_brand: Brand::ISO5,
        minor_version: 0,
        compatible_brands,
    };
    let (width, height) = resolution.unwrap_or((0, 0));
    let fixed = |v: u16| FixedPointNumber::new(i16::try_from(v).unwrap_or(i16::MAX), 0u16);
    let tkhd = TkhdBox {
        flag_track_enabled: true,
        flag_track_in_movie: true,
        flag_track_in_preview: false,
        flag_track_size_is_aspect_ratio: false,
        creation_time: epoch,
        modification_time: epoch,
        track_id: TRACK_ID,
        duration: 0,
        layer: TkhdBox::DEFAULT_LAYER,
        alternate_group: TkhdBox::DEFAULT_ALTERNATE_GROUP,
        volume: if resolution.is_some() {
            TkhdBox::DEFAULT_VIDEO_VOLUME
        } else {
            TkhdBox::DEFAULT_AUDIO_VOLUME
        },
        matrix: TkhdBox::DEFAULT_MATRIX,
        width: fixed(width),
        height: fixed(height),
    };
    let (handler_type, name, media_header) = if resolution.is_some() {
        let vmhd = Either::B(VmhdBox::default());
        (HdlrBox::HANDLER_TYPE_VIDE, &b"VideoHandler\0"[..], vmhd)
    } else {
        let smhd = Either::A(SmhdBox::default());
        (HdlrBox::HANDLER_TYPE_SOUN, &b"SoundHandler\0"[..], smhd)
    };
    let stbl = StblBox {
        stsd_box: StsdBox {
            entries: vec![entry.clone()],
        },
        stts_box: SttsBox::from_sample_deltas(std::iter::empty()),
        ctts_box: None,
        cslg_box: None,
        stsc_box: StscBox {
            entries: Vec::new(),
        },
        stsz_box: StszBox::Variable {
            entry_sizes: Vec::new(),
        },
        stco_or_co64_box: Either::A(StcoBox {
            chunk_offsets: Vec::new(),
        }),
        stss_box: None,
        sdtp_box: None,
        unknown_boxes: Vec::new(),
    };
    let trak = TrakBox {
        tkhd_box: tkhd,
        edts_box: None,
        mdia_box: MdiaBox {
            mdhd_box: MdhdBox {
                creation_time: epoch,
                modification_time: epoch,
                timescale,
                duration: 0,
                language: MdhdBox::LANGUAGE_UNDEFINED,
            },
            hdlr_box: HdlrBox {
                handler_type,
                name: name.to_vec(),
            },
            minf_box: MinfBox {
                smhd_or_vmhd_box: Some(media_header),
                dinf_box: DinfBox::LOCAL_FILE,
                stbl_box: stbl,
                unknown_boxes: Vec::new(),
            },
            unknown_boxes: Vec::new(),
        },
        unknown_boxes: Vec::new(),
    };
    let moov = MoovBox {
        mvhd_box: MvhdBox {
            creation_time: epoch,
            modification_time: epoch,
            timescale,
            duration: 0,
            rate: MvhdBox::DEFAULT_RATE,
            volume: MvhdBox::DEFAULT_VOLUME,
            matrix: MvhdBox::DEFAULT_MATRIX,
            next_track_id: TRACK_ID + 1,
        },
        trak_boxes: vec![trak],
        mvex_box: Some(MvexBox {
            mehd_box: None,
            trex_boxes: vec![TrexBox {
                track_id: TRACK_ID,
                default_sample_description_index: 1,
                default_sample_duration: 0,
                default_sample_size: 0,
                default_sample_flags: SampleFlags::empty(),
            }],
            unknown_boxes: Vec::new(),
        }),
        unknown_boxes: Vec::new(),
    };
    let mut bytes = ftyp.encode_to_vec().map_err(Mp4Error::encode)?;
    bytes.extend_from_slice(&moov.encode_to_vec().map_err(Mp4Error::encode)?);
    Ok(bytes)
}

#[cfg(test)]
#[path = "entry_tests.rs"]
mod tests;
