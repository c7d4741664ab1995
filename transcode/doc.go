// Package transcode makes HLS of files browsers cannot play as they are: a remux (the H.264
// video copied, the audio made AAC) or a transcode (H.264 and AAC), in MPEG-TS segments made
// by ffmpeg from the gateway's own /stream, so only the pieces a job reads are fetched.
//
// A variant's playlist is whole from the first request: its segment bounds are fixed before
// any segment exists (the source's keyframes for a remux, fixed lengths for a transcode), and
// every ffmpeg job cuts at those bounds with the source's timestamps, so a job may start at any
// segment (a seek) and its segments fit the ones other jobs made. Jobs pause when far ahead of
// their viewers and stop when nobody reads; segments are kept on disk for every viewer, each
// with an entry signed by a key of the variant's own (live.SignedEntry), so browsers can take
// segments from each other and check them as the live page does.
package transcode
