// The embed page (/embed/<infohash>): the player alone.
import { start } from './player.js'

start({ video: document.getElementById('player'), messageEl: document.getElementById('message') })
