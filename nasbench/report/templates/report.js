(function(){
function key(td){var v=td.getAttribute('data-v');if(v!==null){return v===''?null:parseFloat(v);}
 var t=td.textContent.trim();return (t===''||t==='\u2014')?null:t.toLowerCase();}
function sortTable(table,col,th){
 var asc=th.getAttribute('aria-sort')!=='ascending';var body=table.tBodies[0];
 var rows=Array.prototype.slice.call(body.rows);
 rows.sort(function(a,b){var x=key(a.cells[col]),y=key(b.cells[col]);
  if(x===null&&y===null){return 0;}if(x===null){return 1;}if(y===null){return -1;}
  if(typeof x==='number'&&typeof y==='number'){return asc?x-y:y-x;}
  x=String(x);y=String(y);return asc?x.localeCompare(y):y.localeCompare(x);});
 Array.prototype.forEach.call(th.parentNode.cells,function(c){c.removeAttribute('aria-sort');});
 th.setAttribute('aria-sort',asc?'ascending':'descending');
 var frag=document.createDocumentFragment();rows.forEach(function(r){frag.appendChild(r);});body.appendChild(frag);}
document.querySelectorAll('table.sortable').forEach(function(table){
 Array.prototype.forEach.call(table.tHead.rows[0].cells,function(th,i){th.tabIndex=0;
  th.addEventListener('click',function(){sortTable(table,i,th);});
  th.addEventListener('keydown',function(e){if(e.key==='Enter'||e.key===' '){e.preventDefault();sortTable(table,i,th);}});});});
document.querySelectorAll('button.copy').forEach(function(btn){btn.addEventListener('click',function(){
 var pre=document.getElementById(btn.getAttribute('data-for'));
 function done(){btn.textContent='copied';setTimeout(function(){btn.textContent='copy';},1500);}
 function fallback(){var r=document.createRange();r.selectNodeContents(pre);var s=window.getSelection();
  s.removeAllRanges();s.addRange(r);try{document.execCommand('copy');done();}catch(e){btn.textContent='press Ctrl+C';}}
 if(navigator.clipboard&&window.isSecureContext){navigator.clipboard.writeText(pre.textContent).then(done,fallback);}
 else{fallback();}});});
document.documentElement.setAttribute('data-ready','1');
})();
