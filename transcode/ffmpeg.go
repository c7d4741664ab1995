package transcode

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/swarmgate/swarmgate/media"
)

// maxJobSegments bounds the segments one ffmpeg run cuts (its -segment_times list must fit on
// a command line): a job that gets there ends, and the next request starts another.
const maxJobSegments = 900

// jobArgs is the ffmpeg command line that makes segments first, first+1, ... of a variant into
// dir/{i}.ts, printing "{i}.ts,start,end" on stdout as each one is closed.
//
// Every job of a variant cuts the same segments whatever segment it starts at, which is what
// lets several jobs fill one cache and a seek start a job anywhere (Jellyfin's approach):
//   - -copyts keeps the source's timestamps, so segment i carries the same times from any job,
//     and -avoid_negative_ts disabled stops the muxer from shifting a job that starts at 0;
//   - the segment muxer cuts at the layout's bounds, given as absolute times, at the first video
//     keyframe there (-segment_time_delta absorbs rounding);
//   - a transcode forces a keyframe at every bound (the expression's t counts from the job's
//     start, which is a bound); a remux starts at the keyframe its first segment starts at.
func jobArgs(v *spec, first int, dir string, hw HWAccel) []string {
	info := v.src.Info
	l := v.layout
	last := min(l.Segments(), first+maxJobSegments)
	ss := l.Bounds[first] - info.StartTime
	if v.mode == Remux {
		// Input seeking lands on the keyframe at or before the target: aim just past the one
		// the segment starts at.
		ss += 0.001
	}
	args := []string{"-hide_banner", "-nostdin", "-loglevel", "error"}
	if v.mode == Transcode {
		switch hw {
		case HWVAAPI:
			args = append(args, "-vaapi_device", "/dev/dri/renderD128")
		case HWQSV:
			args = append(args, "-init_hw_device", "qsv=hw", "-filter_hw_device", "hw")
		}
	}
	args = append(args,
		// Over HTTP a piece the gateway is still fetching is waited for, not an error.
		"-rw_timeout", "120000000",
		"-copyts", "-ss", ffTime(max(ss, 0)), "-i", v.src.URL)
	if last < l.Segments() {
		args = append(args, "-to", ffTime(l.Bounds[last]-info.StartTime))
	}
	args = append(args, "-map", fmt.Sprintf("0:%d", info.Video[0].Index))
	if v.audio != nil {
		args = append(args, "-map", fmt.Sprintf("0:%d", v.audio.Index))
	}
	if v.mode == Remux {
		args = append(args, "-c:v", "copy")
	} else {
		args = append(args, videoEncoder(hw, v.segment)...)
	}
	if v.audio != nil {
		if isAAC(v.audio) {
			args = append(args, "-c:a", "copy")
		} else {
			args = append(args, "-c:a", "aac", "-b:a", "160k", "-ac", "2")
		}
	}
	times := make([]string, 0, last-first)
	for i := first + 1; i < last; i++ {
		times = append(times, ffTime(l.Bounds[i]))
	}
	args = append(args, "-avoid_negative_ts", "disabled", "-max_muxing_queue_size", "4096",
		"-f", "segment", "-segment_format", "mpegts", "-segment_start_number", strconv.Itoa(first),
		"-segment_time_delta", "0.05", "-segment_list", "pipe:1", "-segment_list_type", "csv")
	if len(times) > 0 {
		args = append(args, "-segment_times", strings.Join(times, ","))
	} else {
		args = append(args, "-segment_time", "100000")
	}
	return append(args, dir+"/%d.ts")
}

// videoEncoder is the H.264 encoding of a transcode: at most 1080 lines, 8-bit 4:2:0 (what
// every browser decodes), a keyframe at every segment bound and none chosen by scene cuts.
func videoEncoder(hw HWAccel, seg float64) []string {
	force := []string{"-force_key_frames", fmt.Sprintf("expr:gte(t,n_forced*%s)", ffTime(seg))}
	switch hw {
	case HWVAAPI:
		return append([]string{"-vf", "format=nv12,hwupload,scale_vaapi=h='min(ih,1080)':w=-2", "-c:v", "h264_vaapi", "-qp", "23"}, force...)
	case HWNVENC:
		return append([]string{"-vf", "scale=-2:'min(ih,1080)'", "-pix_fmt", "yuv420p", "-c:v", "h264_nvenc", "-preset", "p4", "-cq", "23", "-forced-idr", "1"}, force...)
	case HWQSV:
		return append([]string{"-vf", "format=nv12,hwupload=extra_hw_frames=64,scale_qsv=h='min(ih,1080)':w=-1", "-c:v", "h264_qsv", "-global_quality", "23", "-forced_idr", "1"}, force...)
	}
	return append([]string{"-vf", "scale=-2:'min(ih,1080)'", "-pix_fmt", "yuv420p",
		"-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-maxrate", "6M", "-bufsize", "12M",
		"-profile:v", "high", "-sc_threshold", "0"}, force...)
}

func isAAC(t *media.Track) bool {
	return t.Codec == "aac" && strings.HasPrefix(t.CodecString, "mp4a.40.")
}

// ffTime writes seconds as ffmpeg reads them, to the microsecond.
func ffTime(s float64) string { return strconv.FormatFloat(s, 'f', 6, 64) }

// parseListLine reads one line of the segment muxer's CSV list: "{i}.ts,start,end".
func parseListLine(line string) (int, bool) {
	name, _, ok := strings.Cut(strings.TrimSpace(line), ",")
	if !ok {
		return 0, false
	}
	num, ok := strings.CutSuffix(name, ".ts")
	if !ok {
		return 0, false
	}
	i, err := strconv.Atoi(num)
	return i, err == nil && i >= 0
}
