// The guide (guide.html): every text is in the message tables; start()
// fills them, and again after a language switch.
import { start } from './ui.js';

start();
