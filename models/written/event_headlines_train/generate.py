"""Writes ../event_headlines_train.jsonl: training event headlines about invented companies, from the sentence
frames in frames.txt (label|event|sector|text[|second company's role:label]), each frame used at most three times
with other names, amounts and places. The selection set (../event_headlines.jsonl) is read only to keep its
companies' names out. Run from this folder: python generate.py (seeded: the same file every time)."""
import json, random, re
random.seed(7)
SEL='../event_headlines.jsonl'
SUF={
'auto':['Motors','Auto','Automotive','Vehicles'],'air':['Airways','Air','Airlines','Aviation'],
'aero':['Aerospace','Aero','Aerostructures'],'defense':['Defense','Dynamics','Defence Systems'],
'bank':['Bank','Bancorp','Savings Bank','Financial'],'fin':['Payments','Capital','Finance','Pay'],
'insurance':['Insurance','Assurance','Underwriters'],'pharma':['Pharma','Therapeutics','Biosciences','Bio'],
'medtech':['Medical','Surgical','Devices','Orthopedics'],'health':['Health','Clinics','Care','Health Systems'],
'tech':['Software','Systems','Networks','Technologies','Cloud'],'chips':['Semiconductor','Microdevices','Silicon'],
'telecom':['Telecom','Mobile','Broadband','Communications'],'retail':['Stores','Retail','Markets','Outfitters','Mart'],
'food':['Foods','Brewing','Beverages','Snacks','Dairy'],'consumer':['Brands','Home','Goods','Products'],
'energy':['Energy','Oil','Petroleum','Gas'],'utility':['Utilities','Water','Power'],
'mining':['Mining','Resources','Metals','Minerals'],'industrial':['Industries','Engineering','Manufacturing','Industrial'],
'chem':['Chemicals','Chemical','Materials','Coatings'],'construction':['Construction','Builders','Infrastructure'],
'property':['Property','REIT','Estates','Realty'],'logistics':['Logistics','Freight','Transport','Parcel'],
'shipping':['Shipping','Marine','Ports','Maritime'],'rail':['Rail','Trains','Transit','Railway'],
'media':['Media','Studios','Streaming','Publishing'],'leisure':['Leisure','Resorts','Gaming','Hotels'],
'generic':['Group','Holdings','Corp','Industries','Partners','Inc'],'education':['Learning','Education','Academies'],
}
GENERIC={w.lower() for v in SUF.values() for s in v for w in s.split()}
sel=[json.loads(l) for l in open(SEL)]
selnames={e['name'] for d in sel for e in d['entities']}
selwords={w.lower() for n in selnames for w in re.findall(r"[A-Za-z]+",n)}
pre=["Zan","Vel","Quor","Tal","Mor","Ix","Oph","Rav","Sel","Cov","Dray","Elm","Fen","Gal","Hol","Jax","Kel","Lum","Nov","Pry","Rho","Sab","Tov","Ulm","Vex","Wyl","Yor","Zep","Ark","Cal","Dex","Fal","Gry","Hex","Ire","Jor","Kal","Lyr","Mav","Nex","Orl","Pax","Quin","Rem","Sol","Tyr","Umb","Ver","Wex","Xan","Yel","Zor","Bre","Cas","Dun","Esk","Fyr","Gor","Hal","Isk","Jun","Kor","Lan","Mir","Nal","Ost","Pel","Ruv","Sten","Thal","Ust","Vor","Wen","Yan"]
mid=["dr","v","lt","rk","sk","mb","nt","th","st","gr","br","k","z","nd","lv","rq"]
suf=["ova","ix","ant","ara","ex","ion","ium","ora","eth","yx","ane","ida","ico","undo","ella","ar","on","is","era","ulo","ic","ent","ax","ine","ond"]
suf2=["avia","ondra","ivex","enza","orva","amir","eldor","istra","ovane","urex","anto","eline","arik","omex","iventa","odyn","evar","alis","unta","orin","acre","imbo","essa","ulon"]
blk={'novanto','calavia','veralis','solara','solara','solera','calix','nexion','dexion','novella','verint','zantec'}
used=set()
def root():
    while True:
        r=random.choice(pre)+random.choice(suf2)
        rl=r.lower()
        if rl in blk or rl in selwords or rl in used: continue
        if any(rl[:5]==w[:5] for w in selwords if len(w)>=5): continue
        used.add(rl); return r
def name(sector):
    return root()+' '+random.choice(SUF[sector])
CITIES=["Ohio","Rotterdam","Singapore","Lyon","Osaka","Denver","Manila","Bavaria","Ontario","Queensland","Valencia","Gdansk","Monterrey","Tucson","Pune","Porto","Nairobi","Leipzig","Perth","Quebec","Kansas","Bilbao","Busan","Antwerp","Calgary","Turin","Dallas","Jakarta","Lisbon","Chennai"]
DAYS=["Monday","Tuesday","Wednesday","Thursday","Friday"]
MONTHS=["January","February","March","April","May","June","July","August","September","October","November","December"]
QS=["first-quarter","second-quarter","third-quarter","fourth-quarter"]
def money():
    return random.choice(["$","$","$","€","£"])+str(random.choice([4.5,9,12,18,25,32,40,55,65,80,95,120,150,210,275,340,410,475,620]))+" million"
def bn(): return "$"+str(random.choice([1.1,1.4,1.8,2.3,2.9,3.5,4.2,5,6.7,8]))+" billion"
def pct(): return str(random.choice([3,4,6,7,8,9,11,12,14,15,17,18,22,25,28,31,35,40]))+"%"
def nbig(): return "{:,}".format(random.choice([14000,23500,38000,61000,87000,120000,156000,240000,310000,455000]))
def nsmall(): return str(random.choice([45,60,85,120,140,175,230,310,420,560,780]))
def njobs(): return "{:,}".format(random.choice([180,250,400,650,900,1200,1800,2500,3400,4800]))
def fill(t):
    yr=random.choice([2024,2025,2026])
    rep={'{m}':money,'{bn}':bn,'{pct}':pct,'{nbig}':nbig,'{nsmall}':nsmall,'{njobs}':njobs,
         '{city}':lambda:random.choice(CITIES),'{day}':lambda:random.choice(DAYS),'{month}':lambda:random.choice(MONTHS),
         '{d}':lambda:str(random.randint(2,28)),'{q}':lambda:random.choice(QS),'{Q}':lambda:random.choice(["Q1","Q2","Q3","Q4"]),
         '{yr}':lambda:str(yr),'{yr2}':lambda:str(yr+random.choice([3,5,7]))}
    for k,f in rep.items():
        while k in t: t=t.replace(k,f(),1)
    return t
LAB={'neg':'negative','pos':'positive','neu':'neutral'}
frames=[]
for line in open('frames.txt'):
    line=line.rstrip('\n')
    if not line: continue
    p=line.split('|')
    frames.append(dict(label=LAB[p[0]],event=p[1],sector=p[2],text=p[3],b=(p[4].split(':') if len(p)>4 else None)))
target={'negative':342,'positive':228,'neutral':190}
out=[]
for lab,tot in target.items():
    fr=[f for f in frames if f['label']==lab]
    two=[f for f in fr if f['b']]; one=[f for f in fr if not f['b']]
    uses={id(f):3 for f in two}
    rem=tot-3*len(two)
    base=rem//len(one); extra=rem-base*len(one)
    random.shuffle(one)
    for i,f in enumerate(one): uses[id(f)]=base+(1 if i<extra else 0)
    assert max(uses.values())<=3, (lab,base)
    for f in fr:
        for _ in range(uses[id(f)]):
            A=name(f['sector']); t=f['text']
            B=None
            if f['b']: B=name(f['b'][0])
            t=fill(t)
            t=t.replace("{A}'s",A+("'" if A.endswith('s') else "'s"))
            if B: t=t.replace("{B}'s",B+("'" if B.endswith('s') else "'s"))
            t=t.replace('{A}',A)
            ents=[]
            # compute spans after substitution
            if B:
                t=t.replace('{B}',B)
            sa=t.index(A); ents.append({'name':A,'start':sa,'end':sa+len(A),'label':f['label']})
            if B:
                sb=t.index(B); ents.append({'name':B,'start':sb,'end':sb+len(B),'label':LAB[f['b'][1]]})
                ents.sort(key=lambda e:e['start'])
            out.append({'text':t,'label':f['label'],'event':f['event'],'entities':ents})
random.shuffle(out)
with open('../event_headlines_train.jsonl','w') as fo:
    for i,d in enumerate(out,1):
        fo.write(json.dumps({'id':'evt-%04d'%i,**d})+'\n')
print(len(out))
